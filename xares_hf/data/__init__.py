"""Reading and writing task data: WebDataset shards streamed through HF datasets."""

from .acquire import ensure_task_data
from .audio_dataset import AudioSample, LeftOut, SkippedSample, clip_key, crop_key, iter_audio
from .decoding import DEFAULT_RESAMPLER, DecoderUnavailable, crops
from .prefetch import decode_workers, prefetch_audio
from .shards import DataError, is_hub_layout, shard_files, task_folder
from .writer import encode_audio, write_shards
from .zenodo import DownloadError, fetch_record

__all__ = [
    "DEFAULT_RESAMPLER",
    "AudioSample",
    "DataError",
    "DecoderUnavailable",
    "DownloadError",
    "LeftOut",
    "SkippedSample",
    "clip_key",
    "crop_key",
    "crops",
    "encode_audio",
    "ensure_task_data",
    "fetch_record",
    "is_hub_layout",
    "iter_audio",
    "decode_workers",
    "prefetch_audio",
    "shard_files",
    "task_folder",
    "write_shards",
]

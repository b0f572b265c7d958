"""Reading and writing task data: WebDataset shards streamed through HF datasets."""

from .audio_dataset import AudioSample, crops, iter_audio
from .shards import DataError, shard_files, task_folder
from .writer import encode_audio, write_shards

__all__ = ["AudioSample", "DataError", "crops", "encode_audio", "iter_audio", "shard_files", "task_folder", "write_shards"]

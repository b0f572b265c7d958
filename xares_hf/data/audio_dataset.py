"""Stream a task split from WebDataset shards as HF ``datasets``, decoded to mono at the encoder's rate."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .shards import DataError

AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg", "opus", "m4a", "sox", "wma")


@dataclass
class AudioSample:
    """One decoded clip (or crop of a clip) with its JSON metadata."""

    key: str
    url: str
    audio: np.ndarray  # float32, mono, at the requested sampling rate
    meta: Any
    position: int = 0  # index of the clip in the split (crops of a clip share it)

    @property
    def where(self) -> str:
        return f"file {self.url}, sample '{self.key}'"


def audio_column(shard: str, task: str, split: str) -> str:
    """The audio extension used in a shard, read from its first members (no full read)."""
    import fsspec

    try:
        with fsspec.open(shard, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
            for i, member in enumerate(tar):
                ext = member.name.rsplit(".", 1)[-1].lower() if "." in member.name else ""
                if ext in AUDIO_EXTENSIONS:
                    return ext
                if i > 16:
                    break
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"task '{task}', split '{split}': cannot read shard {shard}: {err}") from None
    raise DataError(
        f"task '{task}', split '{split}': shard {shard} holds no audio file "
        f"(expected <key>.{{{','.join(AUDIO_EXTENSIONS[:4])}}} + <key>.json)"
    )


def stream_split(files: list[str], sampling_rate: int, task: str, split: str):
    """A streaming ``datasets.IterableDataset`` over the shards, audio resampled and down-mixed."""
    import datasets

    column = audio_column(files[0], task, split)
    features = datasets.Features(
        {
            # resampled by the decoder; down-mixed below by channel mean as X-ARES does (ffmpeg's
            # own down-mix scales by 1/sqrt(2) per channel, which changes levels)
            column: datasets.Audio(sampling_rate=sampling_rate),
            "json": datasets.Json(),
            "__key__": datasets.Value("string"),
            "__url__": datasets.Value("string"),
        }
    )
    dataset = datasets.load_dataset(
        "webdataset", data_files={split: files}, split=split, streaming=True, features=features
    )
    return dataset, column


def iter_audio(
    files: list[str],
    sampling_rate: int,
    task: str,
    split: str,
    crop_length: float | None = None,
    stride: tuple[int, int] = (0, 1),
) -> Iterator[AudioSample]:
    """Decoded samples of a split in shard order; with ``crop_length`` each clip becomes its crops.

    ``stride=(k, n)`` keeps the clips whose position modulo n is k, and decodes only those.
    """
    dataset, column = stream_split(files, sampling_rate, task, split)
    iterator = iter(dataset)
    position = -1
    while True:
        try:
            row = next(iterator)
        except StopIteration:
            return
        except Exception as err:  # decoding happens inside datasets; say where it broke
            raise DataError(f"task '{task}', split '{split}': failed to read a sample from {files}: {err}") from err
        position += 1
        if position % stride[1] != stride[0]:
            continue
        where = f"file {row.get('__url__')}, sample '{row.get('__key__')}'"
        decoder = row.get(column)
        if decoder is None:
            raise DataError(f"task '{task}', split '{split}', {where}: no .{column} audio in this sample")
        if row.get("json") is None:
            raise DataError(f"task '{task}', split '{split}', {where}: no .json metadata in this sample")
        try:
            audio = decoder.get_all_samples().data.numpy().mean(axis=0, dtype=np.float32)
        except Exception as err:
            raise DataError(f"task '{task}', split '{split}', {where}: cannot decode audio: {err}") from err
        if audio.size == 0 or not np.isfinite(audio).all():
            raise DataError(f"task '{task}', split '{split}', {where}: audio is empty or not finite")
        for i, crop in enumerate(crops(audio, sampling_rate, crop_length)):
            key = row["__key__"] if crop_length is None else f"{row['__key__']}#{i}"
            yield AudioSample(key=key, url=row["__url__"], audio=crop, meta=row["json"], position=position)


def crops(audio: np.ndarray, sampling_rate: int, crop_length: float | None) -> list[np.ndarray]:
    """X-ARES cropping: sequential non-overlapping crops; remainder dropped; short clips zero-padded."""
    if crop_length is None:
        return [audio]
    size = int(round(crop_length * sampling_rate))
    if audio.shape[0] < size:
        return [np.pad(audio, (0, size - audio.shape[0]))]
    return [audio[i * size : (i + 1) * size] for i in range(audio.shape[0] // size)]

"""Stream a task split from WebDataset shards as HF ``datasets``, decoded to mono at the encoder's rate.

The shards are read by :mod:`.tar_reader`, wrapped as a streaming ``datasets.IterableDataset``
whose rows hold each sample's raw bytes; decoding and validation happen in :func:`iter_audio`, where the
task, split, shard and key of every sample are known, so each problem is reported with all four:

    task 'T', split 'S', file <shard>, sample 'KEY': <what is wrong>

Problems with a shard as a whole (unreadable, not a tar, truncated, no audio in it) are reported as
``task 'T', split 'S': cannot read shard <shard>: <why>`` and always stop the iteration; a bad sample does
too, unless ``on_bad_sample="skip"``, which yields a :class:`SkippedSample` in its place and goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .shards import DataError
from .tar_reader import one_line, read_shards, show_name

ON_BAD_SAMPLE = ("error", "skip")


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


@dataclass
class SkippedSample:
    """A sample left out with ``on_bad_sample="skip"``: where it is and what is wrong with it."""

    key: str
    url: str
    position: int  # index of the sample in the split, counting bad samples too
    reason: str

    @property
    def where(self) -> str:
        return f"file {self.url}, sample '{self.key}'"


@dataclass
class LeftOut:
    """Something of a shard that is not scored although nothing is wrong with it (e.g. a tar member that belongs
    to no sample): never silent, it is counted and listed in the task's ``left_out`` in both ``on_bad_sample`` modes."""

    key: str
    url: str
    reason: str

    @property
    def where(self) -> str:
        return f"file {self.url}, sample '{self.key}'"


class _BadSample(Exception):
    """What is wrong with one sample (the message's last part)."""


# ---------------------------------------------------------------------------------------------- dataset

def stream_split(files: list[str], task: str, split: str):
    """A streaming ``datasets.IterableDataset`` over the shards: one row per sample, audio and JSON as bytes.

    Columns: ``__key__``, ``__url__``, ``audio`` (``datasets.Audio(decode=False)``: ``{"bytes", "path"}``),
    ``audio_member`` (its name in the tar), ``json`` (bytes) and ``problem`` (what is wrong with the sample's
    members, else None). A shard that cannot be read raises :class:`DataError` during iteration.
    """
    import datasets

    features = datasets.Features(
        {
            "__key__": datasets.Value("string"),
            "__url__": datasets.Value("string"),
            "audio": datasets.Audio(decode=False),
            "audio_member": datasets.Value("string"),
            "json": datasets.Value("binary"),
            "problem": datasets.Value("string"),
        }
    )
    return datasets.IterableDataset.from_generator(
        read_shards, features=features, gen_kwargs={"files": [str(f) for f in files], "task": task, "split": split}
    )


# ---------------------------------------------------------------------------------------------- decoding


def _metadata(raw: bytes, key: str) -> Any:
    name = f"{show_name(key)}.json"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _BadSample(f"metadata '{name}' is not UTF-8: {err}") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise _BadSample(f"metadata '{name}' is not valid JSON: {one_line(err)}") from None


def _wav_truncation(data: bytes) -> str | None:
    """For a RIFF/WAVE file, whether its data chunk is shorter than its header declares (ffmpeg reads it silently)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            present = len(data) - pos - 8
            if size not in (0, 0xFFFFFFFF) and present < size:
                return f"its header declares {size} bytes of samples, {present} are present"
            return None
        pos += 8 + size + (size & 1)
    return None


def _decode_audio(data: bytes, member: str, sampling_rate: int) -> np.ndarray:
    from torchcodec.decoders import AudioDecoder

    name = show_name(member)
    if not data:
        raise _BadSample(f"audio '{name}' is empty (0 bytes)")
    why = _wav_truncation(data)
    if why:
        raise _BadSample(f"audio '{name}' is truncated: {why}")
    try:
        decoder = AudioDecoder(data, sample_rate=sampling_rate)
    except ValueError as err:
        if "best audio stream" in str(err):
            raise _BadSample(f"audio '{name}' has no audio stream that ffmpeg can decode (unsupported codec, or not audio)") from None
        raise _BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None
    except Exception as err:
        raise _BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None
    try:
        samples = decoder.get_all_samples().data
    except Exception as err:
        if "No audio frames were decoded" in str(err):
            raise _BadSample(f"audio '{name}' holds no samples (zero length)") from None
        raise _BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None
    if samples.shape[-1] == 0:
        raise _BadSample(f"audio '{name}' holds no samples (zero length)")
    header = decoder.metadata.duration_seconds_from_header
    decoded = samples.shape[-1] / sampling_rate
    # FLAC's STREAMINFO counts the samples exactly; ffmpeg returns fewer without an error when the file was
    # cut at a frame boundary
    if decoder.metadata.codec == "flac" and header and decoded < header - 1e-3 - 2 / sampling_rate:
        raise _BadSample(f"audio '{name}' is truncated: {decoded:.3f} s decoded of the {header:.3f} s its header declares")
    # down-mixed by channel mean as X-ARES does (ffmpeg's own down-mix scales by 1/sqrt(2) per channel)
    audio = samples.numpy().mean(axis=0, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise _BadSample(f"audio '{name}' has NaN or infinite samples")
    return audio


def _decode_row(row: dict, sampling_rate: int) -> tuple[np.ndarray, Any]:
    if row["problem"]:
        raise _BadSample(row["problem"])
    meta = _metadata(row["json"], row["__key__"])
    audio = _decode_audio(row["audio"]["bytes"] if row["audio"] else b"", row["audio_member"], sampling_rate)
    return audio, meta


def iter_audio(
    files: list[str],
    sampling_rate: int,
    task: str,
    split: str,
    crop_length: float | None = None,
    stride: tuple[int, int] = (0, 1),
    on_bad_sample: str = "error",
    max_duration: float | None = None,
) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    """Decoded samples of a split in shard order; with ``crop_length`` each clip becomes its crops.

    ``stride=(k, n)`` keeps the samples whose position (index in the split, bad samples included) modulo n
    is k, and decodes only those. A bad sample raises :class:`DataError` naming task, split, shard and key
    (``on_bad_sample="error"``), or comes out as a :class:`SkippedSample` (``"skip"``); a shard that cannot
    be read raises in both modes.
    """
    if on_bad_sample not in ON_BAD_SAMPLE:
        raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    return _iter_audio(files, sampling_rate, task, split, crop_length, stride, on_bad_sample, max_duration)


def _iter_audio(files, sampling_rate, task, split, crop_length, stride, on_bad_sample,
                max_duration) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    for position, row in enumerate(stream_split(files, task, split)):
        if position % stride[1] != stride[0]:
            continue
        key, url = row["__key__"], row["__url__"]
        try:
            audio, meta = _decode_row(row, sampling_rate)
        except _BadSample as bad:
            if on_bad_sample == "skip":
                yield SkippedSample(key=key, url=url, position=position, reason=str(bad))
                continue
            raise DataError(f"task '{task}', split '{split}', file {url}, sample '{show_name(key)}': {bad}") from None
        for i, crop in enumerate(crops(audio, sampling_rate, crop_length)):
            name = key if crop_length is None else f"{key}#{i}"
            yield AudioSample(key=name, url=url, audio=crop, meta=meta, position=position)


def crops(audio: np.ndarray, sampling_rate: int, crop_length: float | None) -> list[np.ndarray]:
    """X-ARES cropping: sequential non-overlapping crops; remainder dropped; short clips zero-padded."""
    if crop_length is None:
        return [audio]
    size = int(round(crop_length * sampling_rate))
    if audio.shape[0] < size:
        return [np.pad(audio, (0, size - audio.shape[0]))]
    return [audio[i * size : (i + 1) * size] for i in range(audio.shape[0] // size)]

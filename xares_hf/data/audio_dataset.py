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
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ..messages import one_line, show_name
from .decoding import (DEFAULT_RESAMPLER, RESAMPLERS, BadSample, Clip, DecoderUnavailable, decode_audio, decode_crops,
                       member_byte_limit)
from .shards import DataError
from .tar_reader import read_shards

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


# ---------------------------------------------------------------------------------------------- dataset

def stream_split(files: list[str], task: str, split: str, max_bytes: int | None = None):
    """A streaming ``datasets.IterableDataset`` over the shards: one row per sample, audio and JSON as bytes.

    Columns: ``__key__``, ``__url__``, ``audio`` (the member's bytes, undecoded),
    ``audio_member`` (its name in the tar), ``json`` (bytes) and ``problem`` (what is wrong with the sample's
    members, else None), ``left_out`` (why a member that is no sample's audio or JSON was not read; such a
    row holds nothing else). Members over ``max_bytes`` are not read. A shard that cannot be read raises
    :class:`DataError` during iteration.
    """
    import datasets

    features = datasets.Features(
        {
            "__key__": datasets.Value("string"),
            "__url__": datasets.Value("string"),
            "audio": datasets.Value("binary"),
            "audio_member": datasets.Value("string"),
            "json": datasets.Value("binary"),
            "problem": datasets.Value("string"),
            "left_out": datasets.Value("string"),
        }
    )
    kwargs = {"files": [str(f) for f in files], "task": task, "split": split, "max_bytes": max_bytes}
    return datasets.IterableDataset.from_generator(read_shards, features=features, gen_kwargs=kwargs)


# ---------------------------------------------------------------------------------------------- decoding


def _metadata(raw: bytes, key: str) -> Any:
    name = f"{show_name(key)}.json"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadSample(f"metadata '{name}' is not UTF-8: {err}") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise BadSample(f"metadata '{name}' is not valid JSON: {one_line(err)}") from None


@dataclass(frozen=True)
class DecodeSettings:
    """How a split's clips are decoded: the same in this process and in every decode worker."""

    sampling_rate: int
    crop_length: float | None = None
    max_duration: float | None = None
    resampler: str = DEFAULT_RESAMPLER


@dataclass
class Decoded:
    """One sample decoded, as a worker process hands it back: its metadata and clips (its crops), or why it is bad.
    ``clips`` is None for a clip too long to hold whole, which is cut into crops window by window in order."""

    meta: Any = None
    clips: list[np.ndarray] | None = None
    bad: str | None = None
    no_decoder: str | None = None  # no installed decoder can read it (:class:`DecoderUnavailable`)


def _lazy_clips(row: dict, settings: DecodeSettings, clip: Clip | None = None) -> Iterator[np.ndarray]:
    data, member, rate = row["audio"] or b"", row["audio_member"], settings.sampling_rate
    if settings.crop_length is None:
        return iter([decode_audio(data, member, rate, settings.max_duration, settings.resampler)])
    return decode_crops(data, member, rate, settings.crop_length, settings.max_duration, settings.resampler, clip)


def decode_row(row: dict, settings: DecodeSettings) -> Decoded:
    """A sample's metadata and every clip (or crop) of it; a clip to crop that is longer than the decoding window
    (``max_duration``) is left to :func:`_lazy_clips` in the consuming process, so a worker never holds it whole."""
    try:
        if row["problem"]:
            raise BadSample(row["problem"])
        meta = _metadata(row["json"], row["__key__"])
        clip = None
        if settings.crop_length is not None and settings.max_duration is not None:
            clip = Clip(row["audio"] or b"", show_name(row["audio_member"]), settings.sampling_rate, settings.resampler)
            if not clip.header_seconds or clip.header_seconds > settings.max_duration:
                return Decoded(meta=meta)
        return Decoded(meta=meta, clips=list(_lazy_clips(row, settings, clip)))
    except BadSample as bad:
        return Decoded(bad=str(bad))
    except DecoderUnavailable as err:
        return Decoded(no_decoder=str(err))


def iter_audio(
    files: list[str],
    sampling_rate: int,
    task: str,
    split: str,
    crop_length: float | None = None,
    stride: tuple[int, int] = (0, 1),
    on_bad_sample: str = "error",
    max_duration: float | None = None,
    resampler: str = DEFAULT_RESAMPLER,
    decode_map: Callable | None = None,
) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    """Decoded samples of a split in shard order; with ``crop_length`` each clip becomes its crops.

    WAV and FLAC at ``sampling_rate`` are read by soundfile, everything else by torchcodec (:mod:`.decoding`).
    Clips at another rate are resampled to ``sampling_rate`` by torchaudio's windowed-sinc algorithm as X-ARES
    resamples (:mod:`.sinc_resample`), or with ``resampler="ffmpeg"`` by FFmpeg.

    ``stride=(k, n)`` keeps the samples whose position (index in the split, bad samples included) modulo n
    is k, and decodes only those. A bad sample raises :class:`DataError` naming task, split, shard and key
    (``on_bad_sample="error"``), or comes out as a :class:`SkippedSample` (``"skip"``); a shard that cannot
    be read raises in both modes. Members of a shard that are no sample's audio or JSON come out as
    :class:`LeftOut` in both modes (in the first part of a stride only, so they are listed once).

    ``max_duration`` (seconds, None: no limit) bounds memory: a longer clip is a bad sample, found before it
    is decoded whole, or with ``crop_length`` is cut into its crops a window at a time; a tar member too
    large for such a clip (:func:`member_byte_limit`) is a bad sample without being read.

    ``decode_map(fn, jobs)`` runs :func:`decode_row` over the rows, in order (default: here, one by one;
    :func:`.prefetch.prefetch_audio` passes worker processes).
    """
    if on_bad_sample not in ON_BAD_SAMPLE:
        raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {RESAMPLERS}, got {resampler!r}")
    settings = DecodeSettings(sampling_rate, crop_length, max_duration, resampler)
    return _iter_audio(files, task, split, stride, on_bad_sample, settings, decode_map or _here)


def _here(fn: Callable, jobs: Iterator) -> Iterator:
    """``decode_map`` in this process: each job as it is reached (a job that is not a row passes through)."""
    return (fn(*job[1:]) if job[0] == "decode" else job[1] for job in jobs)


def _iter_audio(files, task, split, stride, on_bad_sample, settings: DecodeSettings,
                decode_map: Callable) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    pending: deque[tuple[int, dict]] = deque()  # (position, row) of each row sent to decode_row, in order

    def jobs() -> Iterator[tuple]:
        """``("decode", row, settings)`` for each sample of this stride, ``("pass", item)`` for a member left out."""
        position = -1
        for row in stream_split(files, task, split, member_byte_limit(settings.max_duration)):
            if row["left_out"] is not None:
                if stride[0] == 0:
                    yield "pass", LeftOut(key=row["__key__"], url=row["__url__"], reason=row["left_out"])
                continue
            position += 1
            if position % stride[1] == stride[0]:
                pending.append((position, row))
                yield "decode", row, settings

    for item in decode_map(decode_row, jobs()):
        if isinstance(item, LeftOut):
            yield item
            continue
        position, row = pending.popleft()
        key, url = row["__key__"], row["__url__"]
        where = f"task '{task}', split '{split}', file {url}, sample '{show_name(key)}'"
        if item.no_decoder is not None:  # the machine lacks a decoder: no verdict on the sample, so never skipped
            raise DecoderUnavailable(f"{where}: {item.no_decoder}")
        try:
            if item.bad is not None:
                raise BadSample(item.bad)
            clips = item.clips if item.clips is not None else _lazy_clips(row, settings)
            for i, clip in enumerate(clips):
                name = key if settings.crop_length is None else crop_key(key, i)
                yield AudioSample(key=name, url=url, audio=clip, meta=item.meta, position=position)
        except BadSample as bad:
            if on_bad_sample == "skip":
                yield SkippedSample(key=key, url=url, position=position, reason=str(bad))
                continue
            raise DataError(f"{where}: {bad}") from None
        except DecoderUnavailable as err:  # a long clip, decoded here window by window
            raise DecoderUnavailable(f"{where}: {err}") from None


def crop_key(key: str, index: int) -> str:
    """The key of a clip's ``index``-th crop (``<key>#<index>``)."""
    return f"{key}#{index}"


def clip_key(name: str, cropped: bool) -> str:
    """The clip's own key from a sample's key (the crop's, when the task is ``cropped``)."""
    return name.rsplit("#", 1)[0] if cropped else name

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
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np

from .shards import DataError
from ..messages import one_line, show_name
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


class _BadSample(Exception):
    """What is wrong with one sample (the message's last part)."""


# ---------------------------------------------------------------------------------------------- dataset

def stream_split(files: list[str], task: str, split: str, max_bytes: int | None = None):
    """A streaming ``datasets.IterableDataset`` over the shards: one row per sample, audio and JSON as bytes.

    Columns: ``__key__``, ``__url__``, ``audio`` (``datasets.Audio(decode=False)``: ``{"bytes", "path"}``),
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
            "audio": datasets.Audio(decode=False),
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


# The most bytes a second of audio can reasonably take in a shard: uncompressed 48 kHz stereo at 32 bits
# (384 kB/s), above the 16-bit FLAC/WAV at 16-48 kHz of every X-ARES task; compressed formats take far less.
# With the headroom for headers and metadata chunks (cover art), it bounds what the tar reader reads into
# memory for one member: a longer clip is refused as too long anyway. A card with hi-res multichannel
# audio raises data.max_duration.
BYTES_PER_SECOND = 48_000 * 2 * 4
HEADER_BYTES = 16 << 20

# Decoded integer PCM lies in [-1, 1); float files may go a little beyond full scale (mixing headroom,
# resampling overshoot). A peak above 100 (40 dB over full scale) is no recording level but garbage or a
# wrong scale (int16 values stored as float reach 32768), and values such as 3e38 are finite yet overflow
# any encoder (squared in a power spectrum, summed over a frame): a bad sample of the audio, not of the encoder.
MAX_ABS_SAMPLE = 100.0

# a clip may exceed max_duration by this much (resampling rounds the length to whole samples)
_DURATION_SLACK_S = 1e-3


def member_byte_limit(max_duration: float | None) -> int | None:
    """The largest tar member :func:`iter_audio` reads for clips of at most ``max_duration`` seconds."""
    return None if max_duration is None else int(max_duration * BYTES_PER_SECOND) + HEADER_BYTES


def _too_long(name: str, length: str, max_duration: float) -> str:
    return (f"audio '{name}' is {length}, more than the card's data.max_duration of {max_duration:g} s: "
            "it was not decoded (set data.crop_length to cut long clips into crops, or raise data.max_duration)")


class _SincResampled:
    """A decoder at the clip's own rate whose samples come out resampled by :func:`.sinc_resample.sinc_resample`
    (torchaudio's algorithm, protocol ``"xares-0.1.3"``) instead of by FFmpeg."""

    def __init__(self, decoder, sampling_rate: int) -> None:
        self.decoder, self.sampling_rate, self.metadata = decoder, sampling_rate, decoder.metadata

    def get_samples_played_in_range(self, start: float, stop: float | None):
        import torch

        from .sinc_resample import sinc_resample

        got = self.decoder.get_samples_played_in_range(start, stop)
        native = int(self.decoder.metadata.sample_rate)
        return SimpleNamespace(data=torch.from_numpy(sinc_resample(got.data.numpy(), native, self.sampling_rate)))


def _open(data: bytes, name: str, sampling_rate: int, resampler: str = "ffmpeg"):
    """A torchcodec decoder for one clip, resampling to ``sampling_rate`` (by FFmpeg, or with ``resampler="sinc"``
    by torchaudio's algorithm); nothing is decoded yet."""
    from torchcodec.decoders import AudioDecoder

    if not data:
        raise _BadSample(f"audio '{name}' is empty (0 bytes)")
    why = _wav_truncation(data)
    if why:
        raise _BadSample(f"audio '{name}' is truncated: {why}")
    try:
        if resampler == "sinc":
            return _SincResampled(AudioDecoder(data), sampling_rate)
        return AudioDecoder(data, sample_rate=sampling_rate)
    except ValueError as err:
        if "best audio stream" in str(err):
            raise _BadSample(f"audio '{name}' has no audio stream that ffmpeg can decode (unsupported codec, or not audio)") from None
        raise _BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None
    except Exception as err:
        raise _BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None


def _samples(decoder, name: str, start: float, stop: float | None):
    """The (channels, samples) tensor of ``[start, stop)`` seconds; empty past the end of the clip."""
    try:
        return decoder.get_samples_played_in_range(start, stop).data
    except Exception as err:
        if "No audio frames were decoded" in str(err):
            return None
        raise _BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None


def _mono(samples, name: str) -> np.ndarray:
    """Down-mixed by channel mean as X-ARES does (ffmpeg's own down-mix scales by 1/sqrt(2) per channel)."""
    import torch

    low, high = torch.aminmax(samples)  # one pass, no copy; NaN comes out as NaN
    peak = float(torch.maximum(-low, high))
    if not np.isfinite(peak):
        raise _BadSample(f"audio '{name}' has NaN or infinite samples")
    if peak > MAX_ABS_SAMPLE:
        raise _BadSample(
            f"audio '{name}' has samples of magnitude {peak:.3g}, more than {MAX_ABS_SAMPLE:g} times full scale: "
            "garbage or a wrong scale (decoded audio lies in [-1, 1])"
        )
    if samples.shape[0] == 1:
        return samples[0].numpy()
    return samples.numpy().mean(axis=0, dtype=np.float32)


def _check_complete(decoder, name: str, decoded: int, sampling_rate: int) -> None:
    # FLAC's STREAMINFO counts the samples exactly; ffmpeg returns fewer without an error when the file was
    # cut at a frame boundary
    header = decoder.metadata.duration_seconds_from_header
    seconds = decoded / sampling_rate
    if decoder.metadata.codec == "flac" and header and seconds < header - 1e-3 - 2 / sampling_rate:
        raise _BadSample(f"audio '{name}' is truncated: {seconds:.3f} s decoded of the {header:.3f} s its header declares")


def _decode_audio(data: bytes, member: str, sampling_rate: int, max_duration: float | None = None,
                  resampler: str = "ffmpeg") -> np.ndarray:
    """The whole clip, mono at ``sampling_rate``; a clip longer than ``max_duration`` is refused after at most
    that much was decoded (before anything is, when its header says how long it is)."""
    name = show_name(member)
    decoder = _open(data, name, sampling_rate, resampler)
    header = decoder.metadata.duration_seconds_from_header
    if max_duration is not None and header and header > max_duration + _DURATION_SLACK_S:
        raise _BadSample(_too_long(name, f"{header:.3f} s long (its header says)", max_duration))
    samples = _samples(decoder, name, 0.0, None if max_duration is None else max_duration + 1.0)
    if samples is None or samples.shape[-1] == 0:
        raise _BadSample(f"audio '{name}' holds no samples (zero length)")
    if max_duration is not None and samples.shape[-1] > (max_duration + _DURATION_SLACK_S) * sampling_rate:
        seconds = samples.shape[-1] / sampling_rate
        shown = (f"{seconds:.3f} s long" if seconds < max_duration + 1.0
                 else f"longer than {max_duration + 1.0:g} s (decoded that far)")
        raise _BadSample(_too_long(name, shown, max_duration))
    _check_complete(decoder, name, samples.shape[-1], sampling_rate)
    return _mono(samples, name)


def _decode_crops(data: bytes, member: str, sampling_rate: int, crop_length: float,
                  max_duration: float | None, resampler: str = "ffmpeg") -> Iterator[np.ndarray]:
    """The clip's crops (:func:`crops`), decoded a window of about ``max_duration`` at a time.

    A clip no longer than the window is decoded whole, as :func:`_decode_audio` does. A longer one is cut
    window by window (each a whole number of crops), so memory stays bounded whatever its length or header;
    each window is resampled on its own, which may shift its crops by a fraction of a sample. A window that
    cannot be decoded makes the sample bad; the reason says how many crops before it were already given.
    """
    if max_duration is None:
        yield from crops(_decode_audio(data, member, sampling_rate, resampler=resampler), sampling_rate, crop_length)
        return
    name = show_name(member)
    decoder = _open(data, name, sampling_rate, resampler)
    size = int(round(crop_length * sampling_rate))
    used = max(1, int(max_duration // crop_length)) * size  # samples of a window: whole crops
    start, given = 0, 0
    try:
        while True:  # a second more than a window is decoded, to see whether the clip goes on
            window = _window(data, name, sampling_rate, decoder if start == 0 else None, start, used, resampler)
            if window is None:
                break
            audio, more = window
            if start == 0 and not more:  # the whole clip
                _check_complete(decoder, name, audio.shape[0], sampling_rate)
                yield from crops(audio, sampling_rate, crop_length)
                return
            for i in range(audio.shape[0] // size):
                yield audio[i * size : (i + 1) * size]
                given += 1
            start += audio.shape[0]
            if not more:
                break
        _check_complete(decoder, name, start, sampling_rate)
    except _BadSample as bad:
        if not given:
            raise
        raise _BadSample(f"{bad} (its first {given} crops were already given)") from None


def _window(data: bytes, name: str, sampling_rate: int, decoder, start: int, used: int,
            resampler: str = "ffmpeg") -> tuple[np.ndarray, bool] | None:
    """``used`` samples of mono audio from sample ``start`` on (fewer at the end) and whether the clip goes on;
    None past its end. A window after the first gets a fresh decoder: a used one shifts what it resamples
    after a seek by its resampler's delay."""
    decoder = decoder or _open(data, name, sampling_rate, resampler)
    samples = _samples(decoder, name, start / sampling_rate, (start + used) / sampling_rate + 1.0)
    if samples is None or samples.shape[-1] == 0:
        if start == 0:
            raise _BadSample(f"audio '{name}' holds no samples (zero length)")
        return None
    more = samples.shape[-1] > used
    return _mono(samples[:, :used] if more else samples, name), more


def _decode_row(row: dict, sampling_rate: int, crop_length: float | None, max_duration: float | None,
                resampler: str = "ffmpeg"):
    """``(meta, clips)``: the sample's metadata and its audio (the whole clip, or its crops, as they are decoded)."""
    if row["problem"]:
        raise _BadSample(row["problem"])
    meta = _metadata(row["json"], row["__key__"])
    data = row["audio"]["bytes"] if row["audio"] else b""
    if crop_length is None:
        return meta, iter([_decode_audio(data, row["audio_member"], sampling_rate, max_duration, resampler)])
    return meta, _decode_crops(data, row["audio_member"], sampling_rate, crop_length, max_duration, resampler)


def iter_audio(
    files: list[str],
    sampling_rate: int,
    task: str,
    split: str,
    crop_length: float | None = None,
    stride: tuple[int, int] = (0, 1),
    on_bad_sample: str = "error",
    max_duration: float | None = None,
    resampler: str = "ffmpeg",
) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    """Decoded samples of a split in shard order; with ``crop_length`` each clip becomes its crops.

    Clips at another rate are resampled to ``sampling_rate`` by FFmpeg, or with ``resampler="sinc"`` by
    torchaudio's windowed-sinc algorithm (:mod:`.sinc_resample`; protocol ``"xares-0.1.3"``).

    ``stride=(k, n)`` keeps the samples whose position (index in the split, bad samples included) modulo n
    is k, and decodes only those. A bad sample raises :class:`DataError` naming task, split, shard and key
    (``on_bad_sample="error"``), or comes out as a :class:`SkippedSample` (``"skip"``); a shard that cannot
    be read raises in both modes. Members of a shard that are no sample's audio or JSON come out as
    :class:`LeftOut` in both modes (in the first part of a stride only, so they are listed once).

    ``max_duration`` (seconds, None: no limit) bounds memory: a longer clip is a bad sample, found before it
    is decoded whole, or with ``crop_length`` is cut into its crops a window at a time; a tar member too
    large for such a clip (:func:`member_byte_limit`) is a bad sample without being read.
    """
    if on_bad_sample not in ON_BAD_SAMPLE:
        raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    if resampler not in ("ffmpeg", "sinc"):
        raise ValueError(f"resampler must be 'ffmpeg' or 'sinc', got {resampler!r}")
    return _iter_audio(files, sampling_rate, task, split, crop_length, stride, on_bad_sample, max_duration, resampler)


def _iter_audio(files, sampling_rate, task, split, crop_length, stride, on_bad_sample,
                max_duration, resampler) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    position = -1
    for row in stream_split(files, task, split, member_byte_limit(max_duration)):
        key, url = row["__key__"], row["__url__"]
        if row["left_out"] is not None:
            if stride[0] == 0:
                yield LeftOut(key=key, url=url, reason=row["left_out"])
            continue
        position += 1
        if position % stride[1] != stride[0]:
            continue
        try:
            meta, clips = _decode_row(row, sampling_rate, crop_length, max_duration, resampler)
            for i, clip in enumerate(clips):
                name = key if crop_length is None else crop_key(key, i)
                yield AudioSample(key=name, url=url, audio=clip, meta=meta, position=position)
        except _BadSample as bad:
            if on_bad_sample == "skip":
                yield SkippedSample(key=key, url=url, position=position, reason=str(bad))
                continue
            raise DataError(f"task '{task}', split '{split}', file {url}, sample '{show_name(key)}': {bad}") from None


def crop_key(key: str, index: int) -> str:
    """The key of a clip's ``index``-th crop (``<key>#<index>``)."""
    return f"{key}#{index}"


def clip_key(name: str, cropped: bool) -> str:
    """The clip's own key from a sample's key (the crop's, when the task is ``cropped``)."""
    return name.rsplit("#", 1)[0] if cropped else name


def crops(audio: np.ndarray, sampling_rate: int, crop_length: float | None) -> list[np.ndarray]:
    """X-ARES cropping: sequential non-overlapping crops; remainder dropped; short clips zero-padded."""
    if crop_length is None:
        return [audio]
    size = int(round(crop_length * sampling_rate))
    if audio.shape[0] < size:
        return [np.pad(audio, (0, size - audio.shape[0]))]
    return [audio[i * size : (i + 1) * size] for i in range(audio.shape[0] // size)]

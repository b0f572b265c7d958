"""One clip's bytes -> mono float32 samples at the encoder's rate, checked (length, truncation, values).

Two decoders, one result. Uncompressed WAV and FLAC (what X-ARES shards hold) at the encoder's rate are read with
``soundfile``, whose wheel ships libsndfile: no system FFmpeg needed, and its samples equal FFmpeg's bit for bit
(tested for every subtype it is used for). Everything else goes through ``torchcodec`` (FFmpeg): other codecs,
clips to resample with FFmpeg's resampler when it is asked for, and any clip soundfile cannot read cleanly and
completely, so a damaged file gets the same verdict and message whichever decoder saw it first. When torchcodec
cannot be loaded (no FFmpeg on the machine), a clip only it can decode raises :class:`DecoderUnavailable`, naming the
clip and what to install: never a skipped sample, since the verdict would depend on the machine.

Problems of the clip itself raise :class:`BadSample` with the message's last part (``audio 'k0.flac' is ...``);
:mod:`.audio_dataset` adds the task, split, shard and key.
"""

from __future__ import annotations

import functools
import io
from typing import Iterator

import numpy as np

from ..messages import one_line, show_name


class BadSample(Exception):
    """What is wrong with one sample (the message's last part)."""


class DecoderUnavailable(RuntimeError):
    """No decoder on this machine can read a clip (torchcodec/FFmpeg missing): an installation problem, not bad data."""


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

# what soundfile decodes here: the subtypes whose samples were checked equal to FFmpeg's (tests/test_decoders.py)
SOUNDFILE_SUBTYPES = {
    "WAV": {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"},
    "FLAC": {"PCM_S8", "PCM_16", "PCM_24"},
}

# Clips at another rate are resampled by torchaudio's windowed sinc (reproduced in torch: .sinc_resample), as X-ARES
# resamples (xares/audiowebdataset.py l. 113-116): the paper's numbers were made so, it needs no FFmpeg, and it
# measured as fast as FFmpeg's resampler (0.9 ms for 5 s at 44.1 kHz, FFmpeg's 1.2 ms; BENCHMARKS.md). "ffmpeg" asks for FFmpeg's.
RESAMPLERS = ("sinc", "ffmpeg")
DEFAULT_RESAMPLER = "sinc"

# what libsndfile reports as the length of a file whose header does not say (SF_COUNT_MAX)
UNKNOWN_LENGTH = 2**63 - 1

INSTALL_FFMPEG = ("install FFmpeg (e.g. `apt-get install ffmpeg`) so that torchcodec can load; WAV and FLAC at the "
                  "encoder's rate need neither")


def member_byte_limit(max_duration: float | None) -> int | None:
    """The largest tar member :func:`decode_clip` reads for clips of at most ``max_duration`` seconds."""
    return None if max_duration is None else int(max_duration * BYTES_PER_SECOND) + HEADER_BYTES


def _too_long(name: str, length: str, max_duration: float) -> str:
    return (f"audio '{name}' is {length}, more than the card's data.max_duration of {max_duration:g} s: "
            "it was not decoded (set data.crop_length to cut long clips into crops, or raise data.max_duration)")


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


def _flac_total_samples(data: bytes) -> int | None:
    """The sample count in a FLAC file's STREAMINFO (0: unknown), or None if the bytes are not such a file."""
    if data[:4] != b"fLaC" or len(data) < 26 or data[4] & 0x7F != 0:  # STREAMINFO is the first metadata block
        return None
    return int.from_bytes(data[8 + 10 : 8 + 18], "big") & ((1 << 36) - 1)


@functools.lru_cache(maxsize=1)
def _torchcodec_decoder():
    """torchcodec's ``AudioDecoder``, or the reason it cannot load (imported on first use: it takes seconds)."""
    try:
        from torchcodec.decoders import AudioDecoder
    except Exception as err:  # ImportError, or RuntimeError when FFmpeg's libraries are missing
        return f"torchcodec cannot be loaded ({one_line(err)})"
    return AudioDecoder


class _Torchcodec:
    """A clip decoded by FFmpeg through torchcodec, resampled by it to ``rate`` when given."""

    def __init__(self, data: bytes, name: str, rate: int | None, why: str) -> None:
        decoder = _torchcodec_decoder()
        if isinstance(decoder, str):
            raise DecoderUnavailable(f"audio '{name}' {why}, but {decoder}: {INSTALL_FFMPEG}")
        try:
            self.decoder = decoder(data) if rate is None else decoder(data, sample_rate=rate)
        except ValueError as err:
            if "best audio stream" in str(err):
                raise BadSample(f"audio '{name}' has no audio stream that ffmpeg can decode (unsupported codec, or not audio)") from None
            raise BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None
        except Exception as err:
            raise BadSample(f"cannot decode audio '{name}': {one_line(err)}") from None
        self.name, meta = name, self.decoder.metadata
        self.native_rate, self.header_seconds = int(meta.sample_rate), meta.duration_seconds_from_header
        self.length_known = meta.codec == "flac"  # FLAC's STREAMINFO counts the samples exactly

    def read(self, start: float, stop: float | None) -> np.ndarray | None:
        """The (channels, samples) float32 of ``[start, stop)`` seconds; None past the end of the clip."""
        try:
            return self.decoder.get_samples_played_in_range(start, stop).data.numpy()
        except Exception as err:
            if "No audio frames were decoded" in str(err):
                return None
            raise BadSample(f"cannot decode audio '{self.name}': {one_line(err)}") from None


class _Soundfile:
    """A WAV/FLAC clip read by libsndfile at its own rate. A read that fails, or that is short of what the header
    declares, hands the clip to torchcodec (:meth:`read` raises ``_Handover``), which gives today's verdict."""

    def __init__(self, handle) -> None:
        self.file = handle
        self.native_rate, self.frames = int(handle.samplerate), int(handle.frames)
        self.header_seconds = self.frames / self.native_rate
        self.length_known = True

    def read(self, start: float, stop: float | None) -> np.ndarray | None:
        first = int(round(start * self.native_rate))
        if first >= self.frames:
            return None
        last = self.frames if stop is None else min(self.frames, int(round(stop * self.native_rate)))
        try:
            self.file.seek(first)
            samples = self.file.read(last - first, dtype="float32", always_2d=True)
        except Exception as err:
            raise _Handover(one_line(err)) from None
        if samples.shape[0] != last - first:
            raise _Handover(f"{samples.shape[0]} of the {last - first} samples its header declares were read")
        return samples.T


class _Handover(Exception):
    """soundfile could not read a clip cleanly: torchcodec decodes it instead."""


class Clip:
    """One clip's decoder: soundfile where it gives FFmpeg's samples, else (or when it fails) torchcodec."""

    def __init__(self, data: bytes, name: str, sampling_rate: int, resampler: str = DEFAULT_RESAMPLER) -> None:
        if not data:
            raise BadSample(f"audio '{name}' is empty (0 bytes)")
        why = _wav_truncation(data)
        if why:
            raise BadSample(f"audio '{name}' is truncated: {why}")
        self.data, self.name, self.rate, self.resampler = data, name, sampling_rate, resampler
        self.refused: str | None = None  # why soundfile did not decode it
        self.source = self._soundfile() or self._torchcodec()

    def _soundfile(self) -> _Soundfile | None:
        if not (self.data[:4] == b"fLaC" or (self.data[:4] == b"RIFF" and self.data[8:12] == b"WAVE")):
            return None
        if _flac_total_samples(self.data) == 0:  # libsndfile would decode the whole file to count (114 MB for 2.5 h)
            self.refused = "declares no length in its header"
            return None
        import soundfile

        try:
            handle = soundfile.SoundFile(io.BytesIO(self.data))
        except Exception as err:
            self.refused = f"cannot be opened by soundfile ({one_line(err)})"
            return None
        if handle.subtype not in SOUNDFILE_SUBTYPES.get(handle.format, ()):
            self.refused = f"is {handle.format} {handle.subtype}, which FFmpeg decodes"
            return None
        if not 0 < handle.frames < UNKNOWN_LENGTH:  # a FLAC whose STREAMINFO leaves the count at 0: "unknown"
            self.refused = "declares no length in its header"
            return None
        if handle.samplerate != self.rate and self.resampler == "ffmpeg":
            self.refused = f"is at {handle.samplerate} Hz and is resampled to {self.rate} Hz by FFmpeg (resampler='ffmpeg')"
            return None
        return _Soundfile(handle)

    def _torchcodec(self) -> _Torchcodec:
        why = "is not WAV or FLAC, which FFmpeg decodes" if self.refused is None else self.refused
        return _Torchcodec(self.data, self.name, None if self.resampler == "sinc" else self.rate, why)

    @property
    def header_seconds(self) -> float | None:
        """How long the clip is by its header (None or 0: unknown)."""
        return self.source.header_seconds

    def read(self, start: float, stop: float | None) -> np.ndarray | None:
        """(channels, samples) float32 at ``sampling_rate`` of ``[start, stop)`` seconds; None past the end."""
        try:
            samples = self.source.read(start, stop)
        except _Handover as err:
            self.refused = f"could not be read whole by soundfile ({err})"
            self.source = self._torchcodec()
            samples = self.source.read(start, stop)
        if samples is not None and self.resampler == "sinc":
            from .sinc_resample import sinc_resample

            samples = sinc_resample(samples, self.source.native_rate, self.rate)
        return samples

    def check_complete(self, decoded: int) -> None:
        """A clip whose header counts its samples exactly must yield them all (FFmpeg returns fewer without an
        error when a FLAC file was cut at a frame boundary)."""
        header, seconds = self.header_seconds, decoded / self.rate
        if self.source.length_known and header and seconds < header - 1e-3 - 2 / self.rate:
            raise BadSample(f"audio '{self.name}' is truncated: {seconds:.3f} s decoded of the {header:.3f} s its header declares")


def mono(samples: np.ndarray, name: str) -> np.ndarray:
    """Down-mixed by channel mean as X-ARES does (ffmpeg's own down-mix scales by 1/sqrt(2) per channel)."""
    peak = float(max(-samples.min(), samples.max()))  # NaN comes out as NaN
    if not np.isfinite(peak):
        raise BadSample(f"audio '{name}' has NaN or infinite samples")
    if peak > MAX_ABS_SAMPLE:
        raise BadSample(
            f"audio '{name}' has samples of magnitude {peak:.3g}, more than {MAX_ABS_SAMPLE:g} times full scale: "
            "garbage or a wrong scale (decoded audio lies in [-1, 1])"
        )
    if samples.shape[0] == 1:
        return np.ascontiguousarray(samples[0])
    return samples.mean(axis=0, dtype=np.float32)


def decode_audio(data: bytes, member: str, sampling_rate: int, max_duration: float | None = None,
                 resampler: str = DEFAULT_RESAMPLER) -> np.ndarray:
    """The whole clip, mono at ``sampling_rate``; a clip longer than ``max_duration`` is refused after at most
    that much was decoded (before anything is, when its header says how long it is)."""
    name = show_name(member)
    clip = Clip(data, name, sampling_rate, resampler)
    header = clip.header_seconds
    if max_duration is not None and header and header > max_duration + _DURATION_SLACK_S:
        raise BadSample(_too_long(name, f"{header:.3f} s long (its header says)", max_duration))
    samples = clip.read(0.0, None if max_duration is None else max_duration + 1.0)
    if samples is None or samples.shape[-1] == 0:
        raise BadSample(f"audio '{name}' holds no samples (zero length)")
    if max_duration is not None and samples.shape[-1] > (max_duration + _DURATION_SLACK_S) * sampling_rate:
        seconds = samples.shape[-1] / sampling_rate
        shown = (f"{seconds:.3f} s long" if seconds < max_duration + 1.0
                 else f"longer than {max_duration + 1.0:g} s (decoded that far)")
        raise BadSample(_too_long(name, shown, max_duration))
    clip.check_complete(samples.shape[-1])
    return mono(samples, name)


def decode_crops(data: bytes, member: str, sampling_rate: int, crop_length: float, max_duration: float | None,
                 resampler: str = DEFAULT_RESAMPLER, clip: Clip | None = None) -> Iterator[np.ndarray]:
    """The clip's crops (:func:`crops`), decoded a window of about ``max_duration`` at a time.

    A clip no longer than the window is decoded whole, as :func:`decode_audio` does. A longer one is cut
    window by window (each a whole number of crops), so memory stays bounded whatever its length or header;
    each window is resampled on its own, which may shift its crops by a fraction of a sample. A window that
    cannot be decoded makes the sample bad; the reason says how many crops before it were already given.
    ``clip`` is the clip's decoder if the caller opened it already (nothing read from it yet).
    """
    if max_duration is None:
        yield from crops(decode_audio(data, member, sampling_rate, resampler=resampler), sampling_rate, crop_length)
        return
    name = show_name(member)
    clip = clip or Clip(data, name, sampling_rate, resampler)
    size = int(round(crop_length * sampling_rate))
    used = max(1, int(max_duration // crop_length)) * size  # samples of a window: whole crops
    start, given = 0, 0
    try:
        while True:  # a second more than a window is decoded, to see whether the clip goes on
            window = _window(data, name, sampling_rate, clip if start == 0 else None, start, used, resampler)
            if window is None:
                break
            audio, more = window
            if start == 0 and not more:  # the whole clip
                clip.check_complete(audio.shape[0])
                yield from crops(audio, sampling_rate, crop_length)
                return
            for i in range(audio.shape[0] // size):
                yield audio[i * size : (i + 1) * size].copy()  # a view would keep the whole window alive
                given += 1
            start += audio.shape[0]
            del window, audio  # not held while the next window is decoded
            if not more:
                break
        clip.check_complete(start)
    except BadSample as bad:
        if not given:
            raise
        raise BadSample(f"{bad} (its first {given} crops were already given)") from None


def _window(data: bytes, name: str, sampling_rate: int, clip: Clip | None, start: int, used: int,
            resampler: str = DEFAULT_RESAMPLER) -> tuple[np.ndarray, bool] | None:
    """``used`` samples of mono audio from sample ``start`` on (fewer at the end) and whether the clip goes on;
    None past its end. A window after the first gets a fresh decoder: a used FFmpeg one shifts what it resamples
    after a seek by its resampler's delay."""
    clip = clip or Clip(data, name, sampling_rate, resampler)
    samples = clip.read(start / sampling_rate, (start + used) / sampling_rate + 1.0)
    if samples is None or samples.shape[-1] == 0:
        if start == 0:
            raise BadSample(f"audio '{name}' holds no samples (zero length)")
        return None
    more = samples.shape[-1] > used
    return mono(samples[:, :used] if more else samples, name), more


def crops(audio: np.ndarray, sampling_rate: int, crop_length: float | None) -> list[np.ndarray]:
    """X-ARES cropping: sequential non-overlapping crops; remainder dropped; short clips zero-padded."""
    if crop_length is None:
        return [audio]
    size = int(round(crop_length * sampling_rate))
    if audio.shape[0] < size:
        return [np.pad(audio, (0, size - audio.shape[0]))]
    return [audio[i * size : (i + 1) * size] for i in range(audio.shape[0] // size)]

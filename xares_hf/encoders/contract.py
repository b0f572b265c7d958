"""The encoder contract shared with X-ARES, its checker, and batch encoding with padding removed.

An encoder is a ``torch.nn.Module`` with ``sampling_rate`` (Hz), ``output_dim`` and
``hop_size_in_ms`` whose ``forward(audio)`` maps a (batch, samples) float tensor to
(batch, frames, output_dim). Wrappers may add ``encode_batch(waves)`` to encode clips of
different lengths exactly (attention masks, chunking); plain modules get zero-padding and
their padded frames trimmed.
"""

from __future__ import annotations

import weakref

from dataclasses import dataclass, field

import numpy as np
import torch

REQUIRED_ATTRIBUTES = ("sampling_rate", "output_dim", "hop_size_in_ms")

# Rates an encoder may take, in Hz. Below 4 kHz (2 kHz of bandwidth, half of telephone speech) resampled audio
# keeps too little of any task's sound to be worth scoring, and a few Hz or 100 Hz make the resampler fail on
# every clip, blaming the audio; 384 kHz is the highest rate audio formats and converters use.
SAMPLING_RATES = (4_000, 384_000)


class EncoderContractError(TypeError):
    """An encoder does not meet the contract; the message lists every problem found."""


@dataclass
class EncoderReport:
    """What :func:`check_encoder` found: the encoder's facts and any warnings."""

    name: str
    sampling_rate: int
    output_dim: int
    hop_size_in_ms: float
    frames_per_second_measured: float
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"encoder {self.name}: OK",
            f"  sampling_rate   {self.sampling_rate} Hz",
            f"  output_dim      {self.output_dim}",
            f"  hop_size_in_ms  {self.hop_size_in_ms:g} (measured {1000 / self.frames_per_second_measured:.3g} ms/frame)"
            if self.frames_per_second_measured
            else f"  hop_size_in_ms  {self.hop_size_in_ms:g}",
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def encoder_name(encoder: torch.nn.Module) -> str:
    identity = getattr(encoder, "identity", None)
    return identity["id"] if identity else type(encoder).__name__


def _check_attributes(encoder: object) -> list[str]:
    problems = []
    if not isinstance(encoder, torch.nn.Module):
        problems.append(f"it is a {type(encoder).__name__}, not a torch.nn.Module")
    for attr in REQUIRED_ATTRIBUTES:
        value = getattr(encoder, attr, None)
        if value is None:
            problems.append(f"attribute '{attr}' is missing")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            problems.append(f"attribute '{attr}' must be a positive number, got {value!r}")
    if not problems and int(encoder.output_dim) != encoder.output_dim:
        problems.append(f"attribute 'output_dim' must be an integer, got {encoder.output_dim!r}")
    rate = getattr(encoder, "sampling_rate", None)
    if not problems and int(rate) != rate:
        problems.append(f"attribute 'sampling_rate' must be a whole number of Hz, got {rate!r}")
    elif not problems and not SAMPLING_RATES[0] <= rate <= SAMPLING_RATES[1]:
        problems.append(
            f"attribute 'sampling_rate' must be between {SAMPLING_RATES[0]} and {SAMPLING_RATES[1]} Hz, got {rate!r}: "
            "no audio can be resampled sensibly to that rate"
        )
    return problems


def _forward(encoder: torch.nn.Module, audio: torch.Tensor) -> torch.Tensor:
    out = encoder(audio)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    return out


def _check_output(out: object, batch: int, output_dim: int, what: str) -> list[str]:
    if not isinstance(out, torch.Tensor):
        return [f"forward({what}) returned {type(out).__name__}, expected a torch.Tensor (batch, frames, dim)"]
    if out.ndim != 3:
        return [f"forward({what}) returned shape {tuple(out.shape)}, expected 3 dims (batch, frames, {output_dim})"]
    problems = []
    if out.shape[0] != batch:
        problems.append(f"forward({what}) returned batch size {out.shape[0]}, expected {batch}")
    if out.shape[2] != output_dim:
        problems.append(f"forward({what}) returned dim {out.shape[2]} but output_dim is {output_dim}")
    if out.shape[1] == 0:
        problems.append(f"forward({what}) returned zero frames")
    if not torch.isfinite(out).all():
        problems.append(f"forward({what}) returned NaN or infinite values")
    return problems


@torch.inference_mode()
def check_encoder(encoder: object) -> EncoderReport:
    """Validate the contract on 1 s and 2 s of noise; raise :class:`EncoderContractError` saying what is wrong."""
    problems = _check_attributes(encoder)
    if problems:
        raise EncoderContractError(_format(encoder, problems))
    sr, dim = int(encoder.sampling_rate), int(encoder.output_dim)
    device = _device_of(encoder)
    generator = torch.Generator().manual_seed(0)
    frames = {}
    was_training = encoder.training
    encoder.eval()
    try:
        for seconds in (1, 2):
            audio = 0.1 * torch.randn(2, sr * seconds, generator=generator)
            what = f"audio of shape (2, {sr * seconds})"
            try:
                out = _forward(encoder, audio.to(device))
            except Exception as err:
                raise EncoderContractError(_format(encoder, [f"forward({what}) raised {type(err).__name__}: {err}"])) from err
            problems = _check_output(out, 2, dim, what)
            if problems:
                raise EncoderContractError(_format(encoder, problems))
            frames[seconds] = out.shape[1]
    finally:
        encoder.train(was_training)
    warnings = []
    per_second = frames[2] - frames[1]
    if per_second <= 0:
        warnings.append(
            f"output length does not grow with input length ({frames[1]} frames for 1 s and 2 s): "
            "the encoder pads to a fixed length, so frame-level tasks will see padding"
        )
    else:
        declared = 1000.0 / float(encoder.hop_size_in_ms)
        if abs(per_second - declared) > 0.25 * declared + 1:
            warnings.append(
                f"hop_size_in_ms={encoder.hop_size_in_ms} means {declared:.3g} frames/s, "
                f"but the encoder produces {per_second} frames/s"
            )
    return EncoderReport(encoder_name(encoder), sr, dim, float(encoder.hop_size_in_ms), max(per_second, 0), warnings)


def _format(encoder: object, problems: list[str]) -> str:
    name = encoder_name(encoder) if isinstance(encoder, torch.nn.Module) else type(encoder).__name__
    return f"encoder {name} does not meet the xares-hf/X-ARES encoder contract:\n" + "\n".join(
        f"  - {p}" for p in problems
    )


def _device_of(encoder: torch.nn.Module) -> torch.device:
    for tensor in encoder.parameters():
        return tensor.device
    return torch.device("cpu")


# check_encoder tries 1 s and 2 s of audio: an encoder that fails only on longer clips is probably out of its depth
_CHECKED_SECONDS = 2.0
_MEMORY_WORDS = ("out of memory", "outofmemory", "cannot allocate", "can't allocate", "not enough memory")


def _describe_batch(lengths: list[int], sampling_rate: int, context: str) -> str:
    """'a batch of 4 clips of 0.50-12.00 s (task 'x', split 'train', samples 'k1'..'k4')'."""
    seconds = [n / sampling_rate for n in lengths]
    if not seconds:
        text = "an empty batch"
    elif len(seconds) == 1:
        text = f"a batch of 1 clip of {seconds[0]:.2f} s"
    elif min(seconds) == max(seconds):
        text = f"a batch of {len(seconds)} clips of {seconds[0]:.2f} s each"
    else:
        text = f"a batch of {len(seconds)} clips of {min(seconds):.2f}-{max(seconds):.2f} s"
    return f"{text} ({context})" if context else text


def _clip_list(indices: list[int], seconds: list[float], limit: int = 5) -> str:
    shown = ", ".join(f"{i} ({seconds[i]:.2f} s)" for i in indices[:limit])
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    return f"clip{'s' if len(indices) > 1 else ''} {shown}{more}"


def _expected_frames(seconds: float, hop_ms: float) -> tuple[float, float]:
    """Frames a clip should give at the declared hop, and the slack allowed around it."""
    expected = seconds * 1000.0 / hop_ms
    return expected, max(2.0, 0.1 * expected)


def _raised(encoder: torch.nn.Module, call: str, where: str, err: Exception, longest_s: float) -> EncoderContractError:
    problems = [f"{call} on {where} raised {type(err).__name__}: {err}"]
    text = f"{type(err).__name__} {err}".lower()
    memory = isinstance(err, MemoryError) or any(w in text for w in _MEMORY_WORDS)
    if longest_s > _CHECKED_SECONDS or memory:
        why = (
            f"the encoder passed the check on 1 s and 2 s of audio but failed on clips of up to {longest_s:.2f} s"
            if longest_s > _CHECKED_SECONDS
            else "the encoder ran out of memory"
        )
        problems.append(
            f"hint: {why}: if it cannot take inputs this long or this many at once, lower the card's "
            "probe.batch_size_encode, set data.crop_length to cut long clips, or make the encoder chunk long "
            "inputs (an encode_batch method)"
        )
    return EncoderContractError(_format(encoder, problems))


_FIXED_LENGTH: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()  # plain modules found to return a fixed frame count


@torch.inference_mode()
def encode_batch(
    encoder: torch.nn.Module, waves: list[np.ndarray], context: str = "", strict_frames: bool = False
) -> list[np.ndarray]:
    """Frame embeddings (frames_i, dim) for clips of any lengths, without the frames of zero-padding.

    Wrappers with their own ``encode_batch`` (attention masks, chunking) are used as they are; for a
    plain module the clips are zero-padded to the longest and each output is trimmed to its share of
    frames, in proportion to its length.

    Every batch is checked: one output per clip, each (frames > 0, output_dim) and finite, and with
    ``strict_frames`` (frame-level tasks) a frame count that matches ``hop_size_in_ms`` within
    max(2 frames, 10 %) (for a plain module: the longest clip's). Anything wrong, and any exception
    from the encoder, raises :class:`EncoderContractError` naming the encoder, the batch's clip
    lengths and ``context`` (which task, split and samples).
    """
    if len(waves) == 0:
        return []
    sampling_rate, dim = int(encoder.sampling_rate), int(encoder.output_dim)
    hop_ms = float(encoder.hop_size_in_ms)
    lengths = [int(np.shape(w)[0]) for w in waves]
    seconds = [n / sampling_rate for n in lengths]
    where = _describe_batch(lengths, sampling_rate, context)
    own = getattr(encoder, "encode_batch", None)
    if own is not None:
        try:
            outputs = own(waves)
        except Exception as err:
            raise _raised(encoder, "encode_batch", where, err, max(seconds)) from err
        frames = _checked_own_outputs(encoder, outputs, where, seconds, dim, hop_ms, strict_frames)
        return frames
    if not strict_frames and len(set(lengths)) > 1 and encoder in _FIXED_LENGTH:  # known: encode each clip alone
        return [frames for wave in waves for frames in encode_batch(encoder, [wave], context, strict_frames)]
    device = _device_of(encoder)
    longest = max(lengths)
    try:
        batch = torch.zeros(len(waves), longest)
        for i, w in enumerate(waves):
            batch[i, : lengths[i]] = torch.as_tensor(np.asarray(w, dtype=np.float32))
    except (RuntimeError, MemoryError) as err:  # padding the clips to the longest did not fit in memory
        raise EncoderContractError(_format(encoder, [
            f"cannot pad {where} into one batch of shape ({len(waves)}, {longest}) "
            f"({len(waves) * longest * 4 / 2**30:.3g} GiB of float32): {type(err).__name__}: {str(err).strip().splitlines()[0]}",
            "hint: set the card's data.crop_length to cut long clips, lower data.max_duration to refuse them, "
            "or lower probe.batch_size_encode",
        ])) from err
    call = f"forward(audio of shape {tuple(batch.shape)})"
    try:
        out = _forward(encoder, batch.to(device))
    except Exception as err:
        raise _raised(encoder, call, where, err, max(seconds)) from err
    if not isinstance(out, torch.Tensor):
        raise EncoderContractError(
            _format(encoder, [f"{call} on {where} returned {type(out).__name__}, expected a torch.Tensor (batch, frames, {dim})"])
        )
    if out.ndim != 3:
        raise EncoderContractError(
            _format(encoder, [f"{call} on {where} returned shape {tuple(out.shape)}, expected 3 dims (batch, frames, {dim})"])
        )
    problems = []
    if out.shape[0] != len(waves):
        problems.append(f"{call} on {where} returned batch size {out.shape[0]}, expected {len(waves)} (one row per clip)")
    if out.shape[2] != dim:
        problems.append(f"{call} on {where} returned dim {out.shape[2]} but output_dim is {dim}")
    total = out.shape[1]
    if total == 0:
        expected, _ = _expected_frames(max(seconds), hop_ms)
        problems.append(
            f"{call} on {where} returned zero frames, expected about {expected:.0f} for the longest clip "
            f"({max(seconds):.2f} s) at hop_size_in_ms={hop_ms:g}"
        )
    if problems:
        raise EncoderContractError(_format(encoder, problems))
    expected, slack = _expected_frames(max(seconds), hop_ms)
    if not strict_frames and len(set(lengths)) > 1 and abs(total - expected) > slack:
        # the output does not grow with the input (a fixed number of frames): no share of it belongs to the
        # padding, so trimming in proportion to length would cut real frames; each clip is encoded alone instead,
        # from now on without the batched forward first
        _FIXED_LENGTH.add(encoder)
        return [frames for wave in waves for frames in encode_batch(encoder, [wave], context, strict_frames)]
    keep = [max(1, min(total, int(np.ceil(total * n / longest)))) if longest else 1 for n in lengths]
    # one pass over the output; values in the padding frames trimmed below do not count
    kept = torch.arange(total, device=out.device)[None, :] < torch.tensor(keep, device=out.device)[:, None]
    flagged = (kept & ~torch.isfinite(out).all(dim=2)).any(dim=1).tolist()
    bad = [i for i, flag in enumerate(flagged) if flag]
    if bad:
        problems.append(f"{call} on {where} returned NaN or infinite values for {_clip_list(bad, seconds)}")
    if strict_frames:
        if abs(total - expected) > slack:
            problems.append(
                f"{call} on {where} returned {total} frames for the longest clip ({max(seconds):.2f} s), but "
                f"hop_size_in_ms={hop_ms:g} means about {expected:.0f} (allowed {expected - slack:.0f}-{expected + slack:.0f}): "
                "the frames would not line up with this frame-level task's labels; fix hop_size_in_ms or the output length"
            )
    if problems:
        raise EncoderContractError(_format(encoder, problems))
    out = out.float().cpu().numpy()
    return [out[i, :n] for i, n in enumerate(keep)]


def _checked_own_outputs(
    encoder: torch.nn.Module, outputs: object, where: str, seconds: list[float], dim: int, hop_ms: float, strict_frames: bool
) -> list[np.ndarray]:
    """The arrays an encoder's own ``encode_batch`` returned, as float32, if they meet the contract."""
    call = "encode_batch"
    if isinstance(outputs, torch.Tensor) or not isinstance(outputs, (list, tuple)):
        if not (isinstance(outputs, (torch.Tensor, np.ndarray)) and outputs.ndim == 3):
            kind = f"a {type(outputs).__name__}" + (f" of shape {tuple(outputs.shape)}" if hasattr(outputs, "shape") else "")
            raise EncoderContractError(_format(encoder, [
                f"{call} on {where} returned {kind}, expected a list of {len(seconds)} arrays (frames, {dim}), one per clip"
            ]))
        outputs = list(outputs)
    if len(outputs) != len(seconds):
        raise EncoderContractError(_format(encoder, [
            f"{call} on {where} returned {len(outputs)} outputs, expected {len(seconds)} (one per clip)"
        ]))
    frames, unusable, rank, wrong_dim, empty = [], [], [], [], []
    for i, item in enumerate(outputs):
        if isinstance(item, torch.Tensor):
            item = item.detach().float().cpu().numpy()
        try:
            array = item if isinstance(item, np.ndarray) and item.dtype == np.float32 else np.asarray(item, dtype=np.float32)
        except (TypeError, ValueError):
            unusable.append(i)
            frames.append(None)
            continue
        if array.ndim != 2:
            rank.append(i)
        elif array.shape[1] != dim:
            wrong_dim.append(i)
        elif array.shape[0] == 0:
            empty.append(i)
        frames.append(array)
    problems = []
    if unusable:
        problems.append(
            f"{call} on {where} returned a {type(outputs[unusable[0]]).__name__} for {_clip_list(unusable, seconds)}, "
            f"expected an array (frames, {dim})"
        )
    if rank:
        problems.append(
            f"{call} on {where} returned shape {tuple(frames[rank[0]].shape)} for {_clip_list(rank, seconds)}, "
            f"expected 2 dims (frames, {dim})"
        )
    if wrong_dim:
        problems.append(
            f"{call} on {where} returned dim {frames[wrong_dim[0]].shape[1]} for {_clip_list(wrong_dim, seconds)} "
            f"but output_dim is {dim}"
        )
    if empty:
        expected, _ = _expected_frames(seconds[empty[0]], hop_ms)
        problems.append(
            f"{call} on {where} returned zero frames for {_clip_list(empty, seconds)}, "
            f"expected about {max(1, round(expected))}{' for the first' if len(empty) > 1 else ''} at hop_size_in_ms={hop_ms:g}"
        )
    if problems:
        raise EncoderContractError(_format(encoder, problems))
    finite = [bool(np.isfinite(a).all()) for a in frames]  # one pass over the frames
    bad = [i for i, ok in enumerate(finite) if not ok]
    if bad:
        problems.append(f"{call} on {where} returned NaN or infinite values for {_clip_list(bad, seconds)}")
    if strict_frames:
        off = []
        for i, a in enumerate(frames):
            expected, slack = _expected_frames(seconds[i], hop_ms)
            if abs(a.shape[0] - expected) > slack:
                off.append(f"clip {i} ({seconds[i]:.2f} s): {a.shape[0]} frames, expected about {expected:.0f}")
        if off:
            problems.append(
                f"{call} on {where} returned frame counts that do not match hop_size_in_ms={hop_ms:g} "
                f"(allowed: max(2 frames, 10 %) off): {'; '.join(off[:5])}{f' and {len(off) - 5} more' if len(off) > 5 else ''}: "
                "the frames would not line up with this frame-level task's labels; fix hop_size_in_ms or the output length"
            )
    if problems:
        raise EncoderContractError(_format(encoder, problems))
    return frames

"""The encoder contract shared with X-ARES, its checker, and batch encoding with padding removed.

An encoder is a ``torch.nn.Module`` with ``sampling_rate`` (Hz), ``output_dim`` and
``hop_size_in_ms`` whose ``forward(audio)`` maps a (batch, samples) float tensor to
(batch, frames, output_dim). Wrappers may add ``encode_batch(waves)`` to encode clips of
different lengths exactly (attention masks, chunking); plain modules get zero-padding and
their padded frames trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

REQUIRED_ATTRIBUTES = ("sampling_rate", "output_dim", "hop_size_in_ms")


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
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"attribute '{attr}' must be a positive number, got {value!r}")
    if not problems and int(encoder.output_dim) != encoder.output_dim:
        problems.append(f"attribute 'output_dim' must be an integer, got {encoder.output_dim!r}")
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


@torch.inference_mode()
def encode_batch(encoder: torch.nn.Module, waves: list[np.ndarray]) -> list[np.ndarray]:
    """Frame embeddings (frames_i, dim) for clips of any lengths, without the frames of zero-padding.

    Wrappers with their own ``encode_batch`` (attention masks, chunking) are used as they are; for a
    plain module the clips are zero-padded to the longest and each output is trimmed to its share of
    frames, in proportion to its length.
    """
    own = getattr(encoder, "encode_batch", None)
    if own is not None:
        return [np.asarray(f, dtype=np.float32) for f in own(waves)]
    device = _device_of(encoder)
    lengths = [w.shape[0] for w in waves]
    longest = max(lengths)
    batch = torch.zeros(len(waves), longest)
    for i, w in enumerate(waves):
        batch[i, : w.shape[0]] = torch.from_numpy(w)
    out = _forward(encoder, batch.to(device))
    problems = _check_output(out, len(waves), int(encoder.output_dim), f"audio of shape {tuple(batch.shape)}")
    if problems:
        raise EncoderContractError(_format(encoder, problems))
    out = out.float().cpu().numpy()
    total = out.shape[1]
    return [out[i, : max(1, min(total, int(np.ceil(total * n / longest))))] for i, n in enumerate(lengths)]

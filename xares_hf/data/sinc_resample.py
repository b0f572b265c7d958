"""Band-limited (windowed-sinc) resampling with torchaudio's default settings, written in torch.

xares 0.1.3 resamples with ``torchaudio.functional.resample`` (xares/audiowebdataset.py l. 113-116), which
cannot be installed beside torch 2.13; both protocols resample with this instead. The algorithm: the output
sample ``j`` (at ``new`` Hz) is

    y[j] = sum_i x[i] * (b / orig) * sinc(b * (i / orig - j / new)) * cos(pi * t / (2 w)) ** 2,   |t| <= w

with both rates divided by their gcd, ``b = min(orig, new) * rolloff`` (rolloff 0.99), ``t = b * (i / orig -
j / new)`` and ``w = 6`` zero crossings (a Hann window), ``x`` zero outside the clip, and ``ceil(new * n / orig)``
output samples. It is computed as one strided convolution with ``new`` filters, in float32 as torchaudio does.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99
# input samples convolved at a time: the convolution unfolds its input (taps x steps floats: 15x the clip when
# upsampling 8 -> 16 kHz, 1.7 GB for an hour), so a long clip is resampled piece by piece (each padded on its
# own, written into the output), each output sample from the same taps; a clip shorter than this (16 s at 16 kHz) is one piece
CHUNK_SAMPLES = 1 << 18


@functools.lru_cache(maxsize=16)
def _kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """The ``new`` phase filters (new, 1, taps) and the zero padding each side needs; made once per pair of rates
    (2.9 ms for 44.1 -> 16 kHz: as long as resampling the 5 s clip itself)."""
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / base)
    taps = torch.arange(-width, width + orig, dtype=torch.float32)[None, None] / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new + taps) * base
    t = t.clamp(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = torch.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return sinc * window * (base / orig), width


def sinc_resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """``audio`` (samples,) or (channels, samples) at ``orig_rate`` resampled to ``new_rate`` (float32)."""
    if orig_rate == new_rate:
        return np.asarray(audio, np.float32)
    if orig_rate <= 0 or new_rate <= 0 or int(orig_rate) != orig_rate or int(new_rate) != new_rate:
        raise ValueError(f"sampling rates must be positive integers, got {orig_rate} and {new_rate}")
    gcd = math.gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // gcd, int(new_rate) // gcd
    kernel, width = _kernel(orig, new)
    x = torch.as_tensor(np.ascontiguousarray(audio, np.float32))
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    length = x.shape[-1]
    taps = kernel.shape[-1]
    steps = (length + 2 * width + orig - taps) // orig + 1  # of the convolution over x padded by (width, width + orig)
    size = math.ceil(new * length / orig)
    out = np.empty((x.shape[0], size), np.float32)
    per_piece = max(1, CHUNK_SAMPLES // orig)  # convolution steps per piece
    for first in range(0, steps, per_piece):
        last = min(steps, first + per_piece)
        start, stop = first * orig - width, (last - 1) * orig + taps - width  # the piece's span of x, zeros outside
        piece = torch.nn.functional.pad(x[:, max(0, start) : min(length, stop)], (max(0, -start), max(0, stop - length)))
        values = torch.nn.functional.conv1d(piece[:, None], kernel, stride=orig).transpose(1, 2).reshape(x.shape[0], -1)
        take = min(size, last * new) - first * new
        out[:, first * new : first * new + take] = values[:, :take].numpy()
    out = torch.from_numpy(out)
    return out.reshape(*shape[:-1], out.shape[-1]).numpy()

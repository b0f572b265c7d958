"""An X-ARES encoder file that both xares 0.1.3 and xares-hf load: log-mel frames times a fixed random projection.

Plain torch (no torchaudio), so the same file runs in xares 0.1.3's venv and in xares-hf's. Used by
``scripts/compare_with_xares.py``; xares finds the class by its name ending in ``Encoder``.
"""

import math

import torch


def _mel_filters(n_fft: int, n_mels: int, sampling_rate: int) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, (n_fft // 2 + 1, n_mels)."""
    def mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    points = torch.linspace(mel(0.0), mel(sampling_rate / 2), n_mels + 2)
    hz = 700.0 * (10 ** (points / 2595.0) - 1.0)
    bins = torch.linspace(0, sampling_rate / 2, n_fft // 2 + 1)[:, None]
    lower, centre, upper = hz[:-2], hz[1:-1], hz[2:]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LogMelProjectionEncoder(torch.nn.Module):
    """64 log-mel bands every 20 ms (25 ms windows at 16 kHz), projected to 128 dims by a seeded random matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.sampling_rate = 16_000
        self.output_dim = 128
        self.hop_size_in_ms = 20
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("window", torch.hann_window(400))
        self.register_buffer("mel", _mel_filters(512, 64, self.sampling_rate))
        self.register_buffer("projection", torch.randn(64, self.output_dim, generator=generator) / 8.0)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, n_fft=512, hop_length=320, win_length=400, window=self.window, center=True,
                          return_complex=True).abs().pow(2)
        logmel = torch.log(spec.transpose(1, 2) @ self.mel + 1e-6)
        return logmel @ self.projection

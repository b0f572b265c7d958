"""Built-in weight-free encoders: a log-mel filterbank baseline that needs no download."""

from __future__ import annotations

import torch


class LogMelEncoder(torch.nn.Module):
    """Log-mel filterbank frames (25 ms window, 10 ms hop, 64 mels at 16 kHz): the no-learning baseline."""

    def __init__(self, sampling_rate: int = 16_000, n_mels: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self.output_dim = n_mels
        self.hop_size_in_ms = hop_ms
        self.n_fft = int(round(sampling_rate * win_ms / 1000))
        self.hop = int(round(sampling_rate * hop_ms / 1000))
        from transformers.audio_utils import mel_filter_bank  # transformers takes 0.5 s to import

        mel = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=0.0,
            max_frequency=sampling_rate / 2,
            sampling_rate=sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("mel", torch.as_tensor(mel, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.identity = {"id": "xares-hf/log-mel", "revision": f"n_mels={n_mels},win={win_ms},hop={hop_ms}", "layer": None}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        power = spec.abs().pow(2).transpose(1, 2)  # (batch, frames, freq)
        return torch.log(power @ self.mel + 1e-6)


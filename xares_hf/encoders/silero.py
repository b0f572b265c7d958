"""Silero VAD v6 as a frame-level audio encoder (``load_encoder("silero-vad")``).

The weights are the TorchScript model shipped inside the PyPI wheel ``silero-vad`` (MIT);
nothing is downloaded. The scripted model is only read for its weights: the computation is
re-implemented here in plain PyTorch so that a whole clip, and a batch of clips, is encoded in
one pass instead of silero's 32 ms streaming loop.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PACKAGE = "silero-vad"
INSTALL_HINT = "pip install silero-vad (its weights ship inside the wheel; no download at run time)"

WINDOW = 512  # samples per frame at 16 kHz: 32 ms, silero's own chunk size
CONTEXT = 64  # samples of the previous frame prepended to each window (silero v5/v6)
FEATURES = {"encoder+lstm": 256, "encoder": 128, "lstm": 128}


def silero_vad_version() -> str:
    """The installed ``silero-vad`` version; ImportError naming the install command if it is missing."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(f"the silero-vad encoder needs the 'silero-vad' package: {INSTALL_HINT}") from None


def silero_jit_path() -> Path:
    """The 16 kHz/8 kHz TorchScript model inside the installed package (``silero_vad/data/silero_vad.jit``).

    Found without importing ``silero_vad``: its ``model`` module calls ``torch.set_num_threads(1)``
    at import time, which would slow every other encoder in the process.
    """
    silero_vad_version()
    spec = importlib.util.find_spec("silero_vad")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "data" / "silero_vad.jit"
        if path.is_file():
            return path
    raise ImportError(f"the installed silero-vad package has no data/silero_vad.jit; reinstall it: {INSTALL_HINT}")


class SileroVadEncoder(torch.nn.Module):
    """Silero VAD v6 (16 kHz) frame features: one 256-dim vector per 32 ms (512-sample) frame.

    Silero's streaming model reads 512-sample chunks, each with the previous chunk's last 64
    samples prepended (576 samples; zeros before the first chunk; the clip is zero-padded to a
    multiple of 512). Per chunk it computes

    1. an STFT magnitude: the 576 samples are reflect-padded by 64 on the right (640), and a
       periodic-Hann DFT with n_fft 256 and hop 128 (no centering) gives 4 frames x 129 bins;
    2. a conv encoder: four Conv1d(k=3, pad=1) + ReLU blocks, 129->128 (stride 1), 128->64
       (stride 2), 64->64 (stride 2), 64->128 (stride 1), which shrinks the 4 STFT frames to
       one 128-dim vector per chunk (receptive field: the 36 ms of the chunk and its context);
    3. an LSTMCell(128, 128) run over the chunks in order (state carried across the clip, zero at
       its start), whose hidden state ``h`` feeds the speech-probability head
       (ReLU, Conv1d 128->1, sigmoid).

    The features are, per chunk, ``concat(encoder_output, h)`` (``features="encoder+lstm"``,
    256 dims): the 128 post-ReLU encoder activations (step 2: the local acoustic evidence, and
    the only input the LSTM sees) followed by the 128 LSTM hidden-state values (step 3: the
    clip-context summary the VAD decision is read from). ``features="encoder"`` or ``"lstm"``
    takes one half (128 dims). The probability head is kept for :meth:`speech_probability`,
    which reproduces silero's own streaming output to float precision (tested).

    Frame ``i`` covers samples ``[512 i, 512 (i + 1))`` (plus 64 samples of context before it),
    so a clip of T samples gives ``ceil(T / 512)`` frames: hop 32 ms. Both stages are causal
    and per-chunk, so zero-padding a clip at its end leaves its earlier frames unchanged;
    :meth:`encode_batch` uses that to encode clips of different lengths exactly.
    """

    sampling_rate = 16_000
    hop_size_in_ms = 1000.0 * WINDOW / 16_000  # 32.0

    def __init__(self, features: str = "encoder+lstm") -> None:
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"features must be one of {sorted(FEATURES)}, got {features!r}")
        version = silero_vad_version()
        scripted = torch.jit.load(str(silero_jit_path()), map_location="cpu")
        weights = {k: v.detach().clone().float() for k, v in scripted._model.state_dict().items()}

        self.features = features
        self.output_dim = FEATURES[features]
        self.identity = {"id": "silero-vad", "revision": f"silero-vad=={version}", "layer": features}

        self.register_buffer("stft_basis", weights["stft.forward_basis_buffer"])  # (258, 1, 256)
        self.n_fft, self.stft_hop = 256, 128
        self.convs = torch.nn.ModuleList()
        for i, stride in enumerate((1, 2, 2, 1)):
            w = weights[f"encoder.{i}.reparam_conv.weight"]
            conv = torch.nn.Conv1d(w.shape[1], w.shape[0], kernel_size=3, stride=stride, padding=1)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(weights[f"encoder.{i}.reparam_conv.bias"])
            self.convs.append(conv)
        # LSTMCell and single-layer nn.LSTM share the gate layout (i, f, g, o), so the cell's
        # weights run unchanged over the whole frame sequence in one call.
        self.lstm = torch.nn.LSTM(128, 128, num_layers=1, batch_first=True)
        self.lstm.weight_ih_l0.data.copy_(weights["decoder.rnn.weight_ih"])
        self.lstm.weight_hh_l0.data.copy_(weights["decoder.rnn.weight_hh"])
        self.lstm.bias_ih_l0.data.copy_(weights["decoder.rnn.bias_ih"])
        self.lstm.bias_hh_l0.data.copy_(weights["decoder.rnn.bias_hh"])
        self.head = torch.nn.Conv1d(128, 1, kernel_size=1)
        self.head.weight.data.copy_(weights["decoder.decoder.2.weight"])
        self.head.bias.data.copy_(weights["decoder.decoder.2.bias"])
        self.eval()

    @staticmethod
    def num_frames(num_samples: int) -> int:
        """Frames for a clip of ``num_samples`` samples: ``ceil(num_samples / 512)``."""
        return -(-int(num_samples) // WINDOW)

    def _windows(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, N, 576): each 512-sample chunk with the previous chunk's last 64 samples before it."""
        if audio.ndim != 2:
            raise ValueError(f"expected audio of shape (batch, samples), got {tuple(audio.shape)}")
        frames = self.num_frames(audio.shape[1])
        padded = F.pad(audio.float(), (CONTEXT, frames * WINDOW - audio.shape[1]))
        return padded.unfold(1, CONTEXT + WINDOW, WINDOW)

    def _encode(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs and LSTM hidden states, each (B, N, 128)."""
        windows = self._windows(audio.to(self.stft_basis.device))
        batch, frames, width = windows.shape
        x = F.pad(windows.reshape(batch * frames, 1, width), (0, CONTEXT), mode="reflect")
        spec = F.conv1d(x, self.stft_basis, stride=self.stft_hop)  # (B*N, 258, 4)
        cut = self.n_fft // 2 + 1
        x = torch.sqrt(spec[:, :cut] ** 2 + spec[:, cut:] ** 2)
        for conv in self.convs:
            x = F.relu(conv(x))
        encoded = x.squeeze(-1).reshape(batch, frames, -1)  # (B, N, 128)
        hidden, _ = self.lstm(encoded)
        return encoded, hidden

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) 16 kHz audio -> (batch, ceil(samples / 512), output_dim)."""
        if audio.shape[-1] == 0:
            return audio.new_zeros(audio.shape[0], 0, self.output_dim)
        encoded, hidden = self._encode(audio)
        if self.features == "encoder":
            return encoded
        if self.features == "lstm":
            return hidden
        return torch.cat([encoded, hidden], dim=-1)

    @torch.inference_mode()
    def speech_probability(self, audio: torch.Tensor) -> torch.Tensor:
        """Silero's per-32 ms speech probability, (batch, frames): the model's own output, for checks."""
        _, hidden = self._encode(audio)
        return torch.sigmoid(self.head(F.relu(hidden).transpose(1, 2))).squeeze(1)

    @torch.inference_mode()
    def encode_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frame features (ceil(len / 512), dim) per clip: zero-padded into one batch, trimmed exactly."""
        lengths = [int(np.asarray(w).shape[0]) for w in waves]
        batch = torch.zeros(len(waves), max(lengths, default=0))
        for i, w in enumerate(waves):
            batch[i, : lengths[i]] = torch.as_tensor(np.asarray(w, dtype=np.float32))
        out = self(batch).float().cpu().numpy()
        return [out[i, : max(1, self.num_frames(n))] for i, n in enumerate(lengths)]


__all__ = ["SileroVadEncoder", "silero_jit_path", "silero_vad_version"]

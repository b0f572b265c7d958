"""Model inputs built as tensor math on the model's device, for the feature extractors that are only arithmetic.

A ``transformers`` feature extractor works in numpy on the CPU: for every batch it pads the clips, normalises them
(wav2vec2) or computes a log-mel spectrogram (Whisper), then the result is copied to the GPU. Here the clips go
into one padded float32 host tensor (pinned when the device is CUDA), are copied with ``non_blocking=True``, and the
rest happens on the device, with the extractor's own formulas, so the inputs equal the extractor's (float32
rounding apart). :func:`supports` says which extractors this covers; the others keep the extractor.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

# wav2vec2's per-clip normalisation: (x - mean) / sqrt(var + 1e-7), Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
NORMALISE_EPS = 1e-7


def _kind(extractor: object) -> str | None:
    """'wav2vec2' or 'whisper' for the extractors computed here, else None. Exact types only: a subclass may
    compute something else."""
    from transformers import Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    if type(extractor) is Wav2Vec2FeatureExtractor and int(getattr(extractor, "feature_size", 1)) == 1:
        return "wav2vec2"
    if type(extractor) is WhisperFeatureExtractor and not getattr(extractor, "dither", 0.0):
        return "whisper"  # dither adds random noise, which no second implementation can reproduce
    return None


def supports(extractor: object) -> bool:
    """Whether :func:`model_inputs` can stand in for ``extractor``: a ``Wav2Vec2FeatureExtractor`` of mono audio
    (wav2vec2, HuBERT, WavLM, data2vec-audio) or a ``WhisperFeatureExtractor`` without dither."""
    return _kind(extractor) is not None


def padded_batch(
    waves: list[np.ndarray], length: int, device: torch.device, padding_value: float = 0.0
) -> torch.Tensor:
    """(len(waves), length) float32 on ``device``: each clip, cut to ``length``, then ``padding_value``. Filled in
    pinned host memory when the device is CUDA, so the copy is asynchronous."""
    host = torch.empty((len(waves), length), dtype=torch.float32, pin_memory=device.type == "cuda")
    host.fill_(padding_value)
    for row, wave in zip(host, waves):
        clip = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)[:length])
        row[: clip.shape[0]].copy_(clip)
    return host.to(device, non_blocking=True)


def _no_autocast(device: torch.device):
    """Full precision whatever autocast is on: the extractors compute in float32 (a bf16 log-mel differs)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def wav2vec2_inputs(
    extractor,
    waves: list[np.ndarray],
    device: torch.device,
    attention_mask: bool,
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """What ``extractor(waves, padding=True, return_attention_mask=attention_mask, pad_to_multiple_of=...)``
    gives, on ``device``: clips padded with the extractor's padding value to the longest (rounded up to a multiple of
    ``pad_to_multiple_of``) and, with ``do_normalize``, each normalised over its own samples (its padding set back
    to the padding value).

    One difference, on purpose: without ``attention_mask`` the extractor normalises each padded row, padding
    included, so a clip's values would depend on the others in its batch; here every clip is normalised over its
    own samples, as when it is encoded alone (the two agree when the clips are of one length).
    """
    lengths = [int(np.shape(w)[0]) for w in waves]
    longest = max(lengths)
    if pad_to_multiple_of and longest % pad_to_multiple_of:
        longest = (longest // pad_to_multiple_of + 1) * pad_to_multiple_of
    padding = float(extractor.padding_value)
    values = padded_batch(waves, longest, device, 0.0 if extractor.do_normalize else padding)
    counts = torch.tensor(lengths, dtype=torch.float32)
    counts = (counts.pin_memory() if device.type == "cuda" else counts).to(device, non_blocking=True)
    valid = torch.arange(longest, device=device)[None, :] < counts[:, None]
    if extractor.do_normalize:
        with _no_autocast(device):  # two passes in float32, as numpy's mean and var of the float32 clip
            n = counts.clamp(min=1)[:, None]
            centred = (values - values.sum(1, keepdim=True) / n).masked_fill_(~valid, 0.0)
            var = centred.square().sum(1, keepdim=True) / n
            values = centred.div_(torch.sqrt(var + NORMALISE_EPS)).masked_fill_(~valid, padding)
    inputs = {"input_values": values}
    if attention_mask:
        inputs["attention_mask"] = valid.to(torch.int32)
    return inputs


def whisper_inputs(
    extractor,
    waves: list[np.ndarray],
    device: torch.device,
    pad_to_max: bool = True,
    mel_filters: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Whisper's log-mel features as ``extractor(waves)`` makes them (``WhisperFeatureExtractor.
    _torch_extract_fbank_features``), on ``device``: clips cut to ``n_samples`` and padded to it (``pad_to_max``) or
    to the longest (``padding="longest"``), Hann-windowed STFT, power spectrum without the last frame, mel filters,
    log10 of at least 1e-10, floored at each clip's maximum minus 8, then (x + 4) / 4. ``mel_filters``: the
    extractor's filter bank as (mel, frequency) float32 on ``device``, if already there."""
    n_samples = int(extractor.n_samples)
    length = n_samples if pad_to_max else min(n_samples, max(int(np.shape(w)[0]) for w in waves))
    audio = padded_batch(waves, length, device, float(extractor.padding_value))
    with _no_autocast(device):
        window = torch.hann_window(extractor.n_fft, device=device)
        stft = torch.stft(audio, extractor.n_fft, extractor.hop_length, window=window, return_complex=True)
        power = stft[..., :-1].abs() ** 2
        if mel_filters is None:
            mel_filters = torch.from_numpy(np.asarray(extractor.mel_filters)).to(device, torch.float32).T
        log_spec = torch.clamp(mel_filters @ power, min=1e-10).log10()
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0
    return {"input_features": log_spec}


class DeviceInputs:
    """The model inputs one feature extractor would make, computed on the model's device (see :func:`supports`);
    keeps Whisper's mel filter bank on each device it was used on, so it is copied there once."""

    def __init__(self, extractor) -> None:
        self.kind = _kind(extractor)
        if self.kind is None:
            raise TypeError(
                f"{type(extractor).__name__} is not computed on the device (only Wav2Vec2FeatureExtractor of mono "
                "audio and WhisperFeatureExtractor without dither are): use the extractor itself"
            )
        self.extractor = extractor
        self._mel_filters: dict[torch.device, torch.Tensor] = {}

    def __call__(
        self,
        waves: list[np.ndarray],
        device: torch.device,
        attention_mask: bool = False,
        pad_to_multiple_of: int | None = None,
        pad_to_max: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Inputs for ``waves`` on ``device``. ``attention_mask`` and ``pad_to_multiple_of`` apply to wav2vec2-style
        extractors, ``pad_to_max`` (pad to 30 s rather than to the longest clip) to Whisper."""
        if not waves:
            raise ValueError("no clips to make model inputs of")
        if self.kind == "wav2vec2":
            return wav2vec2_inputs(self.extractor, waves, device, attention_mask, pad_to_multiple_of)
        filters = self._mel_filters.get(device)
        if filters is None:
            filters = torch.from_numpy(np.asarray(self.extractor.mel_filters)).to(device, torch.float32).T.contiguous()
            self._mel_filters[device] = filters
        return whisper_inputs(self.extractor, waves, device, pad_to_max, filters)

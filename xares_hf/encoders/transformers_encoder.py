"""Any ``transformers`` audio model (AutoModel + AutoFeatureExtractor) as a frame-level encoder."""

from __future__ import annotations

import math

import numpy as np
import torch

from .contract import EncoderContractError


def _full_precision(module: torch.nn.Module) -> None:
    """Run ``module`` in float32 even under autocast. For grouped convolutions (wav2vec2's positional conv):
    their bf16/fp16 kernels were slower than the rest of the model together on an H100/H200."""
    forward = module.forward

    def run(x: torch.Tensor, *args, **kwargs):
        with torch.autocast(x.device.type, enabled=False):
            return forward(x.float(), *args, **kwargs)

    module.forward = run


class TransformersEncoder(torch.nn.Module):
    """Frame-level hidden states of one layer of a ``transformers`` audio model.

    The hop is derived from the model (conv strides, or the feature extractor's hop times the
    encoder's downsampling); attention masks are used where the feature extractor makes them,
    otherwise clips of different lengths are encoded separately so padding never leaks in; audio
    longer than the model accepts (Whisper: 30 s) is cut into chunks whose frames are concatenated.

    ``layer="all"`` returns every hidden state (the embeddings' output, then each layer's) side by side:
    frames of ``stacked_layers * hidden_size`` features, so one encoding serves a per-layer sweep and a
    learned weighted sum of layers (the pipeline slices or mixes them).

    Whisper pads every input to 30 s, as its feature extractor and X-ARES do; ``pad_whisper=False``
    runs the encoder on the clip's own length instead (positional embeddings cut to fit), which is
    many times faster on short clips but gives embeddings that differ from the padded ones.
    """

    def __init__(
        self,
        model,
        feature_extractor,
        layer: int | str | None = None,
        identity: dict | None = None,
        pad_whisper: bool = True,
    ) -> None:
        super().__init__()
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.layer = layer
        config = model.config
        self.sampling_rate = int(feature_extractor.sampling_rate)
        dim = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
        if not dim:
            raise EncoderContractError(
                f"cannot tell the output size of {type(model).__name__}: its config has neither hidden_size nor d_model"
            )
        self.layer_dim = int(dim)
        self.is_whisper_like = hasattr(feature_extractor, "n_samples") and hasattr(feature_extractor, "hop_length")
        self.max_samples = int(feature_extractor.n_samples) if self.is_whisper_like else None
        # group-normed conv front ends (wav2vec2-base style) see padding even with a mask: encode apart
        self.pad_whisper = pad_whisper
        self.shape_multiple: int | None = None  # see _shape_multiple
        for module in self.model.modules():
            if isinstance(module, torch.nn.Conv1d) and module.groups > 1:
                _full_precision(module)
        self.uses_mask = bool(getattr(feature_extractor, "return_attention_mask", False)) and (
            getattr(config, "feat_extract_norm", "layer") != "group"
        )
        self.hop_size_in_ms = self._hop_ms()
        self.identity = dict(identity or {"id": type(model).__name__, "revision": None}, layer=layer)
        if self.is_whisper_like and not pad_whisper:
            self.identity["whisper_padding"] = "none"
        num_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "encoder_layers", None)
        if isinstance(layer, str) and layer != "all":
            raise ValueError(f"layer must be a hidden-state index or 'all', got {layer!r}")
        if layer == "all" and num_layers is None:
            raise ValueError(f"layer='all': cannot tell how many layers {type(model).__name__} has (no num_hidden_layers)")
        if isinstance(layer, int) and num_layers is not None and not -(num_layers + 1) <= layer <= num_layers:
            raise ValueError(f"layer {layer} does not exist: the model has hidden states 0..{num_layers}")
        self.stacked_layers = num_layers + 1 if layer == "all" else 1
        self.output_dim = self.layer_dim * self.stacked_layers

    def _hop_ms(self) -> float:
        config = self.model.config
        if getattr(config, "conv_stride", None):
            return 1000.0 * math.prod(config.conv_stride) / self.sampling_rate
        if self.is_whisper_like:
            # Whisper: mel hop, then the second conv layer has stride 2
            return 1000.0 * self.feature_extractor.hop_length * 2 / self.sampling_rate
        with torch.inference_mode():
            one, two = (self._frames([np.zeros(self.sampling_rate * s, np.float32)])[0].shape[0] for s in (1, 2))
        if two <= one:
            raise ValueError(f"cannot derive the hop of {type(self.model).__name__}: output length does not grow with input")
        return 1000.0 / (two - one)

    def _shape_multiple(self) -> int:
        """Samples a masked batch is padded to a multiple of. Under mixed precision on a GPU, one second: batch
        shapes then repeat, and each new shape costs a kernel selection (up to 1.5 s for a first bf16 batch on an
        H200; bf16 went from 67 to 187 clips/s on an H100); the mask keeps the padding out of every clip's frames.
        Otherwise no extra padding, which measured faster in fp32 (``shape_multiple`` overrides)."""
        if self.shape_multiple is not None:
            return self.shape_multiple
        return self.sampling_rate if torch.is_autocast_enabled("cuda") and self._device().type == "cuda" else 1

    def _extract(self, waves: list[np.ndarray], **kwargs):
        """The feature extractor in full precision even under mixed-precision autocast: Whisper's computes its
        log-mel spectrogram with torch, which autocast would turn into bf16 that numpy cannot hold."""
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return self.feature_extractor(waves, **kwargs)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _hidden(self, inputs: dict) -> torch.Tensor:
        inputs = {k: v.to(self._device()) for k, v in inputs.items()}
        if self.layer is None:
            out = self.model(**inputs)
            return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        states = self.model(**inputs, output_hidden_states=True).hidden_states
        return torch.cat(states, dim=-1) if self.layer == "all" else states[self.layer]

    def _valid_frames(self, lengths: list[int], total: int) -> list[int]:
        if self.is_whisper_like:
            per = self.sampling_rate * self.hop_size_in_ms / 1000
            return [min(total, max(1, math.ceil(n / per))) for n in lengths]
        fn = getattr(self.model, "_get_feat_extract_output_lengths", None)
        if fn is not None:
            return [min(total, int(v)) for v in fn(torch.tensor(lengths))]
        longest = max(lengths)
        return [min(total, max(1, math.ceil(total * n / longest))) for n in lengths]

    def _whisper_unpadded(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """Whisper's encoder on the clips' own length (all the same length here): no 30 s padding."""
        enc = self.model
        features = self._extract(
            list(waves), sampling_rate=self.sampling_rate, return_tensors="pt", padding="longest"
        )["input_features"].to(self._device())
        x = torch.nn.functional.gelu(enc.conv1(features))
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        states = [x + enc.embed_positions.weight[: x.shape[1]]]
        for layer in enc.layers:
            out = layer(states[-1], None)
            states.append(out[0] if isinstance(out, tuple) else out)
        states[-1] = enc.layer_norm(states[-1])  # as output_hidden_states gives them: the last after the final norm
        if self.layer == "all":
            hidden = torch.cat(states, dim=-1)
        else:
            hidden = states[-1] if self.layer is None else states[self.layer]
        valid = self._valid_frames([w.shape[0] for w in waves], hidden.shape[1])
        return [hidden[i, :n] for i, n in enumerate(valid)]

    def _frames(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """Encode clips that fit the model in one pass each batch."""
        lengths = [w.shape[0] for w in waves]
        exact_only = not self.uses_mask and not (self.is_whisper_like and self.pad_whisper)
        if exact_only and len(set(lengths)) > 1:
            return [f for w in waves for f in self._frames([w])]
        if self.is_whisper_like and not self.pad_whisper:
            return self._whisper_unpadded(waves)
        kwargs = dict(sampling_rate=self.sampling_rate, return_tensors="pt")
        if not self.is_whisper_like:
            kwargs.update(padding=True, return_attention_mask=self.uses_mask)
            if self.uses_mask:
                kwargs["pad_to_multiple_of"] = self._shape_multiple()
        inputs = dict(self._extract(list(waves), **kwargs))
        if self.is_whisper_like:
            inputs.pop("attention_mask", None)
        hidden = self._hidden(inputs)
        valid = self._valid_frames(lengths, hidden.shape[1])
        return [hidden[i, :n] for i, n in enumerate(valid)]

    @torch.inference_mode()
    def encode_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frames (n_i, output_dim) for each clip, long clips chunked to the model's maximum."""
        if self.max_samples is None:
            return [f.float().cpu().numpy() for f in self._frames(waves)]
        pieces, owner = [], []
        for i, w in enumerate(waves):
            for start in range(0, max(1, w.shape[0]), self.max_samples):
                pieces.append(w[start : start + self.max_samples])
                owner.append(i)
        frames = self._frames(pieces)
        out = []
        for i in range(len(waves)):
            out.append(torch.cat([f for f, o in zip(frames, owner) if o == i]).float().cpu().numpy())
        return out

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """The X-ARES contract: (batch, samples) -> (batch, frames, dim), padded to the longest clip."""
        frames = [torch.from_numpy(f) for f in self.encode_batch(list(audio.detach().cpu().float().numpy()))]
        return torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)

"""Any ``transformers`` audio model (AutoModel + AutoFeatureExtractor) as a frame-level encoder."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from .contract import EncoderContractError
from .device_inputs import DeviceInputs, supports

# model types whose group-normed front end is verified to batch exactly (tests/test_encoder_fast_path.py); any other
# runs a clip at a time, since its later layers may let padding in (SEW pools frames, an adapter pads its convs)
GROUP_NORM_BATCHED_TYPES = ("wav2vec2", "hubert", "wavlm")


def _full_precision(module: torch.nn.Module) -> None:
    """Run ``module`` in float32 even under autocast. For grouped convolutions (wav2vec2's positional conv):
    their bf16/fp16 kernels were slower than the rest of the model together on an H100/H200."""
    forward = module.forward

    def run(x: torch.Tensor, *args, **kwargs):
        with torch.autocast(x.device.type, enabled=False):
            return forward(x.float(), *args, **kwargs)

    module.forward = run


def _first_group_norm(model: torch.nn.Module) -> torch.nn.GroupNorm | None:
    """The GroupNorm after the first conv of a wav2vec2-style front end (``feat_extract_norm="group"``) that can be
    batched with per-clip statistics: a model type in GROUP_NORM_BATCHED_TYPES, no adapter, convs without padding
    (so a clip's valid frames see none of the padding). None for any other model."""
    config = model.config
    if (
        getattr(config, "feat_extract_norm", None) != "group"
        or getattr(config, "model_type", None) not in GROUP_NORM_BATCHED_TYPES
        or getattr(config, "add_adapter", False)
    ):
        return None
    layers = getattr(getattr(model, "feature_extractor", None), "conv_layers", None)
    convs = [getattr(layer, "conv", None) for layer in layers or ()]
    if not convs or not all(isinstance(c, torch.nn.Conv1d) and c.padding == (0,) and c.dilation == (1,) for c in convs):
        return None
    norm = getattr(layers[0], "layer_norm", None)
    return norm if isinstance(norm, torch.nn.GroupNorm) else None


@contextlib.contextmanager
def _per_clip_statistics(norm: torch.nn.GroupNorm, valid: list[int]):
    """Within it, ``norm`` normalises row i of its input over its first ``valid[i]`` positions only (the first
    conv's outputs from the clip's own samples), as when the clip is encoded alone; later positions are zero.
    One native group_norm per clip: the statistics are exactly those of the clip encoded alone."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = None
        for i, n in enumerate(valid):
            clip = x[i : i + 1, :, :n]
            piece = torch.nn.functional.group_norm(clip, norm.num_groups, norm.weight, norm.bias, norm.eps)
            if out is None:
                out = piece.new_zeros(x.shape)
            out[i, :, :n] = piece[0]
        return out

    norm.forward = forward
    try:
        yield
    finally:
        del norm.forward


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

    Two ways to keep a GPU fed, chosen in one place (:meth:`fast_paths`); each is on by default when the model
    is off the CPU and off on the CPU (where the golden scores were made), and either attribute overrides that:

    - ``device_features``: the feature extractor's arithmetic (padding, wav2vec2's per-clip normalisation,
      Whisper's log-mel) runs on the model's device (:mod:`.device_inputs`) instead of in numpy; other
      extractors are used as they are. The inputs equal the extractor's to float32 rounding.
    - ``batch_group_norm``: a group-normed conv front end (wav2vec2-base, HuBERT-base, WavLM-base; see
      GROUP_NORM_BATCHED_TYPES) takes clips of different lengths in one batch instead of one at a time: its
      first GroupNorm takes each clip's statistics over that clip's frames only, and the attention mask makes the
      encoder zero the padded frames and leave them out of attention, so each clip's frames are those of the clip
      encoded alone (float rounding apart). Clips shorter than one frame's receptive field are refused, as alone.

    Neither changes the embeddings beyond float rounding, so neither is part of ``identity``.
    """

    def __init__(
        self,
        model,
        feature_extractor,
        layer: int | str | None = None,
        identity: dict | None = None,
        pad_whisper: bool = True,
        device_features: bool | None = None,
        batch_group_norm: bool | None = None,
    ) -> None:
        super().__init__()
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.layer = layer
        self._device_inputs = DeviceInputs(feature_extractor) if supports(feature_extractor) else None
        if device_features and self._device_inputs is None:
            raise ValueError(
                f"device_features=True: {type(feature_extractor).__name__} cannot be computed on the device (only "
                "Wav2Vec2FeatureExtractor of mono audio and WhisperFeatureExtractor without dither can)"
            )
        self.device_features = device_features
        self._group_norm = _first_group_norm(self.model)
        self.batch_group_norm = batch_group_norm
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
        self.pad_whisper = pad_whisper
        self.shape_multiple: int | None = None  # see _shape_multiple
        for module in self.model.modules():
            if isinstance(module, torch.nn.Conv1d) and module.groups > 1:
                _full_precision(module)
        # a group-normed conv front end sees padding even with a mask: encoded apart, unless batch_group_norm
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

    def fast_paths(self) -> tuple[bool, bool]:
        """(device features, batched group norm) as they apply now: each attribute where set, else whether the
        model is off the CPU; and only where possible (a supported extractor, a group-normed front end)."""
        off_cpu = self._device().type != "cpu"
        features = off_cpu if self.device_features is None else self.device_features
        batched = off_cpu if self.batch_group_norm is None else self.batch_group_norm
        return bool(features) and self._device_inputs is not None, bool(batched) and self._group_norm is not None

    def _inputs(self, waves: list[np.ndarray], mask: bool, on_device: bool) -> dict:
        """Model inputs for ``waves``: padded to the longest (Whisper: to 30 s unless ``pad_whisper=False``), with
        an attention mask if ``mask``; made on the model's device if ``on_device``, else by the extractor."""
        multiple = self._shape_multiple() if mask and not self.is_whisper_like else None
        if on_device:
            return self._device_inputs(
                list(waves), self._device(), mask, pad_to_multiple_of=multiple, pad_to_max=self.pad_whisper
            )
        kwargs = dict(sampling_rate=self.sampling_rate, return_tensors="pt")
        if self.is_whisper_like and not self.pad_whisper:
            kwargs["padding"] = "longest"
        elif not self.is_whisper_like:
            kwargs.update(padding=True, return_attention_mask=mask)
            if multiple is not None:
                kwargs["pad_to_multiple_of"] = multiple
        inputs = dict(self._extract(list(waves), **kwargs))
        if self.is_whisper_like:
            inputs.pop("attention_mask", None)
        return inputs

    def _first_conv_frames(self, lengths: list[int]) -> list[int]:
        """Each clip's valid output positions of the first conv, floor((n - kernel) / stride) + 1, after checking
        that every clip gives at least one frame (a batched model would not refuse a shorter one, but fill it)."""
        frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
        short = [i for i, f in enumerate(frames) if f < 1]
        if short:
            field = 1
            for kernel, stride in zip(reversed(self.model.config.conv_kernel), reversed(self.model.config.conv_stride)):
                field = (field - 1) * stride + kernel
            raise ValueError(
                f"clip {short[0]} has {lengths[short[0]]} samples, fewer than the {field} that "
                f"{type(self.model).__name__} needs for one frame ({len(short)} such clip(s) in this batch)"
            )
        conv = self.model.feature_extractor.conv_layers[0].conv
        return [(n - conv.kernel_size[0]) // conv.stride[0] + 1 for n in lengths]

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
        features = self._inputs(waves, mask=False, on_device=self.fast_paths()[0])["input_features"].to(self._device())
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
        on_device, batch_group_norm = self.fast_paths()
        per_clip_norm = batch_group_norm and len(set(lengths)) > 1
        mask = self.uses_mask or per_clip_norm
        exact_only = not mask and not (self.is_whisper_like and self.pad_whisper)
        if exact_only and len(set(lengths)) > 1:
            return [f for w in waves for f in self._frames([w])]
        if self.is_whisper_like and not self.pad_whisper:
            return self._whisper_unpadded(waves)
        inputs = self._inputs(waves, mask, on_device)
        if per_clip_norm:
            with _per_clip_statistics(self._group_norm, self._first_conv_frames(lengths)):
                hidden = self._hidden(inputs)
        else:
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

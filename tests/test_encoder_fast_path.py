"""The GPU fast paths of TransformersEncoder change no embedding: feature extraction on the model's device gives the
extractor's inputs, and group-normed front ends batched with per-clip statistics give each clip's frames as when it
is encoded alone. Both are exercised on the CPU here by switching them on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import TINY_W2V
from xares_hf import load_encoder
from xares_hf.encoders import TransformersEncoder
from xares_hf.encoders.device_inputs import DeviceInputs, supports

CPU = torch.device("cpu")
# measured on this CPU: 4.8e-7 (normalised wav2vec2 inputs), 0 (Whisper log-mel), about 3e-6 (frames)
INPUT_TOLERANCE = 1e-5
FRAME_TOLERANCE = 1e-4


def _waves(seed: int, lengths: list[int], offset: float = 0.05) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.3 * rng.standard_normal(n) + offset).astype(np.float32) for n in lengths]


def _random_lengths(seed: int, count: int = 6, low_s: float = 0.3, high_s: float = 3.0) -> list[int]:
    return [int(s * 16_000) for s in np.random.default_rng(seed).uniform(low_s, high_s, count)]


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert [x.shape for x in a] == [y.shape for y in b]
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def group_models(tmp_path_factory) -> dict:
    """Tiny random wav2vec2, HuBERT and WavLM with a group-normed conv front end, saved with save_pretrained."""
    import transformers as tf

    root = tmp_path_factory.mktemp("group_models")
    kinds = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model), "hubert": (tf.HubertConfig, tf.HubertModel),
             "wavlm": (tf.WavLMConfig, tf.WavLMModel)}
    folders = {}
    for seed, (kind, (config, model)) in enumerate(kinds.items()):
        torch.manual_seed(seed)
        folder = root / kind
        model(config(**TINY_W2V, feat_extract_norm="group")).save_pretrained(folder)
        tf.Wav2Vec2FeatureExtractor().save_pretrained(folder)
        folders[kind] = folder
    return folders


@pytest.mark.parametrize("do_normalize", [True, False])
@pytest.mark.parametrize("mask", [True, False])
def test_device_inputs_equal_the_wav2vec2_extractor(do_normalize, mask):
    from transformers import Wav2Vec2FeatureExtractor

    extractor = Wav2Vec2FeatureExtractor(do_normalize=do_normalize, return_attention_mask=mask, padding_value=0.5)
    waves = _waves(0, [4_800, 16_000, 23_456, 48_000])
    got = DeviceInputs(extractor)(waves, CPU, attention_mask=mask, pad_to_multiple_of=1_600)
    assert got["input_values"].shape == (4, 48_000) and got["input_values"].dtype == torch.float32
    if mask:
        want = extractor(waves, sampling_rate=16_000, padding=True, return_attention_mask=True,
                         pad_to_multiple_of=1_600, return_tensors="pt")
        assert torch.equal(got["attention_mask"], want["attention_mask"])
        assert (got["input_values"] - want["input_values"]).abs().max() < INPUT_TOLERANCE
    else:  # the extractor would normalise each padded row padding included; each clip alone is the reference
        assert "attention_mask" not in got
        for row, wave in zip(got["input_values"], waves):
            alone = extractor([wave], sampling_rate=16_000, return_tensors="pt")["input_values"][0]
            assert (row[: len(wave)] - alone).abs().max() < INPUT_TOLERANCE
            assert torch.all(row[len(wave) :] == 0.5)


@pytest.mark.parametrize("pad_to_max", [True, False])
def test_device_inputs_equal_the_whisper_log_mel(pad_to_max):
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor()
    waves = _waves(1, [4_000, 16_000, 33_333]) + _waves(2, [16_000 * 31])  # the last is cut to 30 s
    kwargs = {} if pad_to_max else {"padding": "longest"}
    want = extractor(waves, sampling_rate=16_000, return_tensors="pt", **kwargs)["input_features"]
    got = DeviceInputs(extractor)(waves, CPU, pad_to_max=pad_to_max)["input_features"]
    assert got.shape == want.shape == (4, 80, 3_000)
    assert (got - want).abs().max() < INPUT_TOLERANCE
    short = waves[:3]  # padding="longest" to 33_333 samples
    want = extractor(short, sampling_rate=16_000, return_tensors="pt", **kwargs)["input_features"]
    got = DeviceInputs(extractor)(short, CPU, pad_to_max=pad_to_max)["input_features"]
    assert got.shape == want.shape and (got - want).abs().max() < INPUT_TOLERANCE


def test_device_log_mel_stays_float32_under_autocast():
    from transformers import WhisperFeatureExtractor

    inputs = DeviceInputs(WhisperFeatureExtractor())
    waves = _waves(3, [16_000])
    plain = inputs(waves, CPU)["input_features"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = inputs(waves, CPU)["input_features"]
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)


def test_other_extractors_keep_the_extractor(tiny_models):
    from transformers import Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    class Custom(Wav2Vec2FeatureExtractor):
        pass

    assert supports(Wav2Vec2FeatureExtractor()) and supports(WhisperFeatureExtractor())
    assert not supports(Custom()) and not supports(WhisperFeatureExtractor(dither=1e-4))
    model = load_encoder(str(tiny_models["wav2vec2"])).model
    encoder = TransformersEncoder(model, Custom())
    encoder.device_features = True
    assert encoder.fast_paths()[0] is False  # falls back to the extractor
    assert encoder.encode_batch(_waves(4, [8_000]))[0].shape == (24, 32)
    with pytest.raises(ValueError, match="Custom cannot be computed on the device"):
        TransformersEncoder(model, Custom(), device_features=True)


@pytest.mark.parametrize(
    "kind, pad_whisper", [("wav2vec2", True), ("hubert", True), ("whisper", True), ("whisper", False)]
)
def test_device_features_give_the_frames_of_the_extractor_path(tiny_models, kind, pad_whisper):
    encoder = load_encoder(str(tiny_models[kind]), pad_whisper=pad_whisper)
    waves = _waves(5, [7_000, 16_000, 12_345])
    reference = encoder.encode_batch(waves)
    encoder.device_features = True
    assert encoder.fast_paths() == (True, False)
    assert _max_diff(encoder.encode_batch(waves), reference) < FRAME_TOLERANCE


def test_device_features_without_normalisation(tiny_models, tmp_path):
    import shutil

    from transformers import Wav2Vec2FeatureExtractor

    folder = tmp_path / "w2v_raw"
    shutil.copytree(tiny_models["wav2vec2"], folder)
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(folder)
    encoder = load_encoder(str(folder))
    waves = _waves(6, [9_000, 9_000, 20_000], offset=0.2)
    reference = encoder.encode_batch(waves)
    encoder.device_features = True
    assert _max_diff(encoder.encode_batch(waves), reference) < FRAME_TOLERANCE


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
@pytest.mark.parametrize("device_features", [False, True])
def test_group_norm_batches_equal_per_clip_encoding(group_models, kind, device_features):
    """Random clips of 0.3-3 s, every hidden state: the batched frames of each clip are those of the clip alone."""
    encoder = load_encoder(str(group_models[kind]), layer="all")
    assert encoder._group_norm is not None and not encoder.uses_mask
    waves = _waves(7, _random_lengths(seed=len(kind)))
    calls = []
    encoder.model.register_forward_hook(lambda module, args, out: calls.append(1))
    alone = encoder.encode_batch(waves)
    assert len(calls) == len(waves)  # today's CPU default: one forward per clip
    encoder.batch_group_norm, encoder.device_features = True, device_features
    calls.clear()
    batched = encoder.encode_batch(waves)
    assert len(calls) == 1
    assert _max_diff(batched, alone) < FRAME_TOLERANCE
    encoder.shape_multiple = 16_000  # as under mixed precision on a GPU: batches padded to whole seconds
    assert _max_diff(encoder.encode_batch(waves), alone) < FRAME_TOLERANCE
    assert "forward" not in vars(encoder._group_norm)  # the per-clip statistics are undone after the batch


def test_a_clip_too_short_for_one_frame_is_refused_batched_as_alone(group_models):
    encoder = load_encoder(str(group_models["wav2vec2"]))
    waves = _waves(8, [300, 16_000])
    with pytest.raises(RuntimeError):  # per clip: the convolutions refuse it
        encoder.encode_batch(waves)
    encoder.batch_group_norm = True
    with pytest.raises(ValueError, match="clip 0 has 300 samples, fewer than the 400 that Wav2Vec2Model needs"):
        encoder.encode_batch(waves)
    assert "forward" not in vars(encoder._group_norm)


def test_the_choice_is_off_on_the_cpu_on_elsewhere_and_not_in_the_identity(tiny_models, group_models):
    encoder = load_encoder(str(group_models["hubert"]))
    identity = dict(encoder.identity)
    assert encoder.fast_paths() == (False, False)
    assert set(identity) == {"id", "revision", "layer"}
    encoder.device_features = encoder.batch_group_norm = True
    assert encoder.fast_paths() == (True, True) and encoder.identity == identity
    off_cpu = load_encoder(str(group_models["hubert"])).to("meta")  # any device but the CPU
    assert off_cpu.fast_paths() == (True, True)
    off_cpu.batch_group_norm = False
    assert off_cpu.fast_paths() == (True, False)
    layer_normed = load_encoder(str(tiny_models["hubert"])).to("meta")
    assert layer_normed.fast_paths() == (True, False)  # no group norm to batch: its mask batches it already

import textwrap

import numpy as np
import pytest
import torch

from helpers import ConstantEncoder
from xares_hf import EncoderContractError, check_encoder, load_encoder
from xares_hf.encoders import encode_batch


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "whisper"])
def test_transformers_models_load_by_path_with_their_hop(tiny_models, kind):
    encoder = load_encoder(str(tiny_models[kind]))
    assert (encoder.sampling_rate, encoder.output_dim, encoder.hop_size_in_ms) == (16_000, 32, 20.0)
    assert encoder.identity["revision"].startswith("weights-sha256:")
    report = check_encoder(encoder)
    assert report.frames_per_second_measured in (49, 50) and not report.warnings
    frames = encode_batch(encoder, [np.zeros(16_000, np.float32), np.zeros(8_000, np.float32)])
    assert [f.shape for f in frames] in ([(49, 32), (24, 32)], [(50, 32), (25, 32)])


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "whisper"])
def test_padding_never_changes_a_clip_embedding(tiny_models, kind):
    encoder = load_encoder(str(tiny_models[kind]))
    rng = np.random.default_rng(0)
    short, long = rng.standard_normal(8_000).astype(np.float32), rng.standard_normal(24_000).astype(np.float32)
    alone = encode_batch(encoder, [short])[0]
    batched = encode_batch(encoder, [short, long])[0]
    assert alone.shape == batched.shape
    np.testing.assert_allclose(alone, batched, atol=1e-4)


def test_layer_selection(tiny_models):
    path = str(tiny_models["wav2vec2"])
    audio = [np.random.default_rng(1).standard_normal(16_000).astype(np.float32)]
    first = encode_batch(load_encoder(path, layer=1), audio)[0]
    last = encode_batch(load_encoder(path), audio)[0]
    assert first.shape == last.shape and not np.allclose(first, last)
    assert load_encoder(path, layer=1).identity["layer"] == 1
    with pytest.raises(ValueError, match="layer 7 does not exist"):
        load_encoder(path, layer=7)
    with pytest.raises(ValueError, match="needs a transformers model"):
        load_encoder("log-mel", layer=2)


def test_whisper_long_audio_is_chunked(tiny_models):
    encoder = load_encoder(str(tiny_models["whisper"]))
    frames = encode_batch(encoder, [np.zeros(16_000 * 35, np.float32)])[0]
    assert frames.shape == (1750, 32)  # 30 s chunk (1500 frames) + 5 s chunk (250 frames)


def test_weight_hash_changes_with_weights(tiny_models, tmp_path):
    from helpers import save_tiny_model

    other = save_tiny_model("wav2vec2", tmp_path / "other", seed=1)
    assert load_encoder(str(other)).identity["revision"] != load_encoder(str(tiny_models["wav2vec2"])).identity["revision"]


def test_xares_style_encoder_file_runs_unchanged(tmp_path):
    source = textwrap.dedent(
        '''
        import torch


        class Helper(torch.nn.Module):
            def forward(self, x):
                return x


        class MyEncoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.sampling_rate = 16000
                self.output_dim = 4
                self.hop_size_in_ms = 10
                self.proj = torch.nn.Linear(160, 4)

            def forward(self, audio: torch.Tensor):
                assert isinstance(audio, torch.Tensor)
                if audio.ndim == 1:
                    audio = audio.unsqueeze(0)
                frames = audio[:, : audio.shape[1] // 160 * 160].reshape(audio.shape[0], -1, 160)
                return self.proj(frames)
        '''
    )
    path = tmp_path / "my_encoder.py"
    path.write_text(source)
    for spec in (str(path), f"{path}:MyEncoder"):
        encoder = load_encoder(spec)
        assert type(encoder).__name__ == "MyEncoder"
        assert encoder.identity["id"] == "my_encoder.py:MyEncoder"
        assert check_encoder(encoder).output_dim == 4
    with pytest.raises(EncoderContractError, match="no torch.nn.Module class named 'Nope'"):
        load_encoder(f"{path}:Nope")


class _NoHop(torch.nn.Module):
    sampling_rate, output_dim = 16_000, 8

    def forward(self, audio):
        return torch.zeros(audio.shape[0], 10, 8)


class _WrongDim(ConstantEncoder):
    def forward(self, audio):
        return torch.zeros(audio.shape[0], 10, 3)


class _TwoDims(ConstantEncoder):
    def forward(self, audio):
        return torch.zeros(audio.shape[0], 8)


class _Fixed(ConstantEncoder):
    def forward(self, audio):
        return torch.zeros(audio.shape[0], 100, 8)


@pytest.mark.parametrize(
    "encoder, message",
    [
        (_NoHop(), "attribute 'hop_size_in_ms' is missing"),
        (_WrongDim(), "returned dim 3 but output_dim is 8"),
        (_TwoDims(), r"returned shape \(2, 8\), expected 3 dims"),
        (object(), "not a torch.nn.Module"),
    ],
)
def test_contract_violations_say_what_is_wrong(encoder, message):
    with pytest.raises(EncoderContractError, match=message):
        check_encoder(encoder)


def test_fixed_length_output_is_a_warning():
    report = check_encoder(_Fixed())
    assert any("does not grow with input length" in w for w in report.warnings)


def test_wrong_shape_during_encoding_is_an_error():
    with pytest.raises(EncoderContractError, match="returned dim 3"):
        encode_batch(_WrongDim(), [np.zeros(1000, np.float32)])


def test_whisper_layers_mean_the_same_hidden_states_padded_or_not(tiny_models):
    """Index -1 (and "all"'s last slice) is the state after the final layer norm, as transformers' hidden_states."""
    wave = [np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1]
    folder = str(tiny_models["whisper"])
    last = load_encoder(folder, pad_whisper=False).encode_batch(wave)[0]
    minus_one = load_encoder(folder, layer=-1, pad_whisper=False).encode_batch(wave)[0]
    every = load_encoder(folder, layer="all", pad_whisper=False)
    stacked = every.encode_batch(wave)[0]
    np.testing.assert_allclose(minus_one, last, atol=1e-4)
    np.testing.assert_allclose(stacked[:, -every.layer_dim :], last, atol=1e-4)
    first = load_encoder(folder, layer=0, pad_whisper=False).encode_batch(wave)[0]
    np.testing.assert_allclose(stacked[:, : every.layer_dim], first, atol=1e-5)
    padded_last = load_encoder(folder, layer=-1).encode_batch(wave)[0]
    padded_default = load_encoder(folder).encode_batch(wave)[0]
    np.testing.assert_allclose(padded_last, padded_default, atol=1e-4)


def test_feature_extraction_stays_in_full_precision_under_autocast(tiny_models):
    from xares_hf import distributed

    wave = [np.random.default_rng(1).standard_normal(16_000).astype(np.float32) * 0.1]
    encoder = load_encoder(str(tiny_models["whisper"]), pad_whisper=False)
    reference = encoder.encode_batch(wave)[0]
    with distributed.autocast(torch.device("cpu"), "bf16"):  # whisper's log-mel is torch: it must not become bf16
        mixed = encoder.encode_batch(wave)[0]
    cosine = (mixed * reference).sum(1) / (np.linalg.norm(mixed, axis=1) * np.linalg.norm(reference, axis=1))
    assert mixed.dtype == np.float32 and cosine.mean() > 0.99


def test_padding_masked_batches_to_whole_seconds_changes_no_frame(tiny_models):
    """On a GPU under mixed precision, masked batches are padded to a multiple of 1 s (shapes repeat): the mask
    must keep every clip's frames as they are."""
    rng = np.random.default_rng(2)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (7_000, 12_345, 20_000)]
    encoder = load_encoder(str(tiny_models["hubert"]))
    assert encoder.uses_mask and encoder._shape_multiple() == 1  # CPU, no autocast: no extra padding
    plain = encoder.encode_batch(waves)
    encoder.shape_multiple = 16_000
    padded = encoder.encode_batch(waves)
    for a, b in zip(plain, padded):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_grouped_convolutions_run_in_full_precision_under_autocast(tiny_models):
    encoder = load_encoder(str(tiny_models["hubert"]))
    conv = next(m for m in encoder.model.modules() if isinstance(m, torch.nn.Conv1d) and m.groups > 1)
    x = torch.randn(1, conv.in_channels, 50)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
        other = torch.nn.Conv1d(conv.in_channels, conv.in_channels, 3)(x)
    assert out.dtype == torch.float32 and other.dtype == torch.bfloat16


class _FixedFrames(torch.nn.Module):
    """Four frames whatever the input's length, each the mean of a quarter of the clip (zero padding included)."""

    sampling_rate, output_dim, hop_size_in_ms = 16_000, 2, 20

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        quarters = audio.reshape(audio.shape[0], 4, -1)
        return torch.stack([quarters.mean(-1), quarters.abs().mean(-1)], dim=-1)


def test_an_output_of_fixed_length_is_not_trimmed_by_clip_length():
    """Such an output has no padding frames to cut: every clip keeps all its frames, as when encoded alone."""
    rng = np.random.default_rng(0)
    short, long = rng.standard_normal(8000).astype(np.float32), rng.standard_normal(16000).astype(np.float32)
    encoder = _FixedFrames()
    together = encode_batch(encoder, [short, long])
    alone = [encode_batch(encoder, [short])[0], encode_batch(encoder, [long])[0]]
    assert [f.shape for f in together] == [(4, 2), (4, 2)]  # before: the short clip kept ceil(4 * 0.5) = 2 frames
    for got, want in zip(together, alone):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_fixed_length_encoder_is_found_once_then_encoded_a_clip_at_a_time_without_the_batched_forward():
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (8000, 16000, 12000)]
    encoder = _FixedFrames()
    calls = []
    encoder.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    encode_batch(encoder, waves)
    assert calls[0] == (3, 16000) and calls[1:] == [(1, 8000), (1, 16000), (1, 12000)]  # the batch, then each clip
    calls.clear()
    second = encode_batch(encoder, waves)
    assert calls == [(1, 8000), (1, 16000), (1, 12000)]  # no batched forward again for this encoder
    assert [f.shape for f in second] == [(4, 2)] * 3
    other = _FixedFrames()
    calls.clear()
    other.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    encode_batch(other, waves)
    assert calls[0] == (3, 16000)  # another encoder is not assumed to be one

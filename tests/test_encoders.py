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

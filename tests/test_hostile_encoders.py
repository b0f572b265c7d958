"""Hostile encoders: a sampling rate no audio can be resampled to, encoder files that do not import or whose
constructor fails (weights that refuse to load), and batches too large to pad. Each gives one line naming the
encoder (file and line, attribute, or samples and lengths) and what went wrong; the audio is never blamed."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from helpers import ConstantEncoder, save_tiny_model, tone, write_card
from xares_hf import cli, evaluate
from xares_hf.data import write_shards
from xares_hf.encoders import EncoderContractError, check_encoder, encode_batch, load_encoder

GOOD_CLASS = '''
class Enc(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.sampling_rate, self.output_dim, self.hop_size_in_ms = 16000, 4, 10
        {init}

    def forward(self, audio):
        return audio[:, : audio.shape[1] // 160 * 160].reshape(audio.shape[0], -1, 160)[..., :4]
'''


class _Rate(ConstantEncoder):
    def __init__(self, rate) -> None:
        super().__init__()
        self.sampling_rate = rate


# ------------------------------------------------------------------------------------------- sampling rate


@pytest.mark.parametrize("rate", [1, 100, 3999, 384_001, 10**6])
def test_a_sampling_rate_no_audio_can_be_resampled_to_is_refused_by_the_contract(rate):
    with pytest.raises(EncoderContractError) as err:
        check_encoder(_Rate(rate))
    assert str(err.value) == (
        "encoder _Rate does not meet the xares-hf/X-ARES encoder contract:\n"
        f"  - attribute 'sampling_rate' must be between 4000 and 384000 Hz, got {rate}: "
        "no audio can be resampled sensibly to that rate"
    )


@pytest.mark.parametrize("rate, ok", [(4000, True), (384_000, True), (16_000.0, True), (16_000.5, False), (float("nan"), False)])
def test_sampling_rates_at_the_bounds_pass_and_fractions_do_not(rate, ok):
    if ok:
        assert check_encoder(_Rate(rate)).sampling_rate == int(rate)
        return
    with pytest.raises(EncoderContractError, match="attribute 'sampling_rate' must be (a whole number of Hz|a positive number)"):
        check_encoder(_Rate(rate))


def test_evaluate_blames_the_encoder_rate_not_the_audio(tmp_path):
    for split in ("train", "valid", "test"):
        write_shards([(f"{split}{i}", tone(300.0), 16_000, {"label": "low"}) for i in range(2)],
                     tmp_path / "data" / "toy" / f"{split}-%03d.tar")
    card = write_card(tmp_path / "toy.yaml")
    with pytest.raises(EncoderContractError, match=r"attribute 'sampling_rate' must be between 4000 and 384000 Hz, got 100:"):
        evaluate(_Rate(100), tasks=[card], data_dir=tmp_path / "data", cache_dir=tmp_path / "c", output_dir=tmp_path / "out")


# ------------------------------------------------------------------------------------------- encoder files


def _weights(folder, kind: str):
    path = folder / "weights.pt"
    if kind == "code":  # a pickle that would call print(): torch.load(weights_only=True) refuses it
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        torch.save({"w": Evil()}, path)
    else:
        path.write_bytes(b"not a checkpoint at all" * 10)
    return path


FILES = {
    "syntax error": ("import torch\nx = (1,\n", "importing it failed (enc.py, line 2): syntax error: '(' was never closed"),
    "import error": ("import torch\nimport no_such_package_xyz\n",
                     "importing it failed (enc.py, line 2): ModuleNotFoundError: No module named 'no_such_package_xyz'"),
    "raises at import": ("import torch\n\nraise RuntimeError('needs a GPU')\n",
                         "importing it failed (enc.py, line 3): RuntimeError: needs a GPU"),
    "sibling syntax error": ("import torch\nimport helper\n", "importing it failed (helper.py, line 1): syntax error: invalid syntax"),
    "constructor raises": ("import torch\n" + GOOD_CLASS.format(init="raise ValueError('no config\\nsecond line')"),
                           "Enc() failed (enc.py, line 7): ValueError: no config"),
    "pickled code": ("import torch\n" + GOOD_CLASS.format(init="torch.load(__file__.replace('enc.py', 'weights.pt'))"),
                     "Enc() failed (enc.py, line 7): cannot load weights {weights}: torch.load refused the pickled weights "
                     "(weights_only=True loads tensors, never code): Unsupported global: GLOBAL print was not an "
                     "allowed global by default"),
    "damaged weights": ("import torch\n" + GOOD_CLASS.format(init="torch.load(__file__.replace('enc.py', 'weights.pt'))"),
                        "Enc() failed (enc.py, line 7): cannot load weights {weights}: "),
    "missing class": ("import torch\n" + GOOD_CLASS.format(init="pass"), "no torch.nn.Module class named 'Nope' (found ['Enc'])"),
}


@pytest.mark.parametrize("case", list(FILES))
def test_an_encoder_file_that_fails_to_load_gives_one_line_naming_file_and_line(tmp_path, case, capsys):
    source, expected = FILES[case]
    path = tmp_path / "enc.py"
    path.write_text(source)
    (tmp_path / "helper.py").write_text("def f(:\n    pass\n")
    weights = _weights(tmp_path, "code" if case == "pickled code" else "damaged")
    spec = f"{path}:Nope" if case == "missing class" else str(path)
    with pytest.raises(EncoderContractError) as err:
        load_encoder(spec)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"encoder file {path}: " + expected.format(weights=weights)), message
    assert cli.main(["check", spec]) == 2  # the command line prints that line, no traceback
    assert capsys.readouterr().err == f"xares-hf: error: {message}\n"


def test_transformers_weights_that_refuse_to_load_are_named(tmp_path):
    folder = save_tiny_model("wav2vec2", tmp_path / "w2v")
    (folder / "model.safetensors").unlink()
    _weights(folder, "code").rename(folder / "pytorch_model.bin")
    with pytest.raises(EncoderContractError) as err:
        load_encoder(str(folder))
    assert str(err.value).startswith(f"cannot load transformers model '{folder}': ")
    assert "torch.load refused the pickled weights (weights_only=True loads tensors, never code): Unsupported global" in str(err.value)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------- batch memory


def test_a_batch_too_large_to_pad_names_its_samples_and_lengths():
    # a clip of 2**46 samples that takes no memory (stride 0): padding it would need 256 TiB
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2**46,), strides=(0,))
    context = "task 'toy', split 'train', samples 'k0', 'k1'"
    with pytest.raises(EncoderContractError) as err:
        encode_batch(ConstantEncoder(), [tone(300.0, 0.5), huge], context=context)
    message = str(err.value)
    assert message.startswith("encoder ConstantEncoder does not meet the xares-hf/X-ARES encoder contract:\n"), message
    assert f"cannot pad a batch of 2 clips of 0.50-{2**46 / 16_000:.2f} s ({context}) into one batch of shape (2, {2**46}) " \
           f"({2 * 2**46 * 4 / 2**30:.3g} GiB of float32): RuntimeError: " in message
    assert "data.crop_length" in message and isinstance(err.value.__cause__, RuntimeError)

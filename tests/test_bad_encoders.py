"""Encoders that misbehave on some batch: every batch is checked, and the error names the encoder, the batch's
clip lengths, where in the benchmark it happened and what was expected; nothing is cached or written after it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from helpers import tone, tone_at, write_card, write_task
from xares_hf import evaluate
from xares_hf.data import write_shards
from xares_hf.encoders import EncoderContractError, LogMelEncoder, encode_batch, load_encoder

SR = 16_000
HOP = 320  # samples per frame at the declared 20 ms
CONTEXT = "task 'toy', split 'train', samples 'k1'..'k3'"
FAULTS = ["rank", "dim", "batch", "zero_frames", "nan", "inf", "hop", "raises"]


def _good_frames(audio: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(batch, samples) -> (batch, samples // 320, 8): a frame every 20 ms, as declared."""
    n = max(1, audio.shape[1] // HOP)
    x = audio[:, : n * HOP].reshape(audio.shape[0], n, HOP).abs().mean(-1, keepdim=True)
    return x * weight


def _misbehave(out: torch.Tensor, fault: str) -> torch.Tensor:
    if fault == "rank":
        return out.mean(1)
    if fault == "dim":
        return out[..., :3]
    if fault == "batch":
        return out[:-1]
    if fault == "zero_frames":
        return out[:, :0]
    if fault in ("nan", "inf"):
        out = out.clone()
        out[-1, 0, 0] = float(fault)
        return out
    if fault == "hop":  # really 10 ms frames, declared 20 ms
        return out.repeat_interleave(2, dim=1)
    if fault == "raises":
        raise RuntimeError("input too long for the positional embeddings")
    raise ValueError(fault)


class BadPlain(torch.nn.Module):
    """A plain X-ARES module that goes wrong (``fault``) on batches holding a clip longer than ``above_s``."""

    sampling_rate, output_dim, hop_size_in_ms = SR, 8, 20

    def __init__(self, fault: str, above_s: float = 0.0) -> None:
        super().__init__()
        self.fault, self.above = fault, int(above_s * SR)
        self.weight = torch.nn.Parameter(torch.ones(8))
        self.calls = 0

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = _good_frames(audio, self.weight)
        return _misbehave(out, self.fault) if audio.shape[1] > self.above else out


class BadOwn(torch.nn.Module):
    """An encoder with its own ``encode_batch`` (like TransformersEncoder and SileroVadEncoder) that goes wrong."""

    sampling_rate, output_dim, hop_size_in_ms = SR, 8, 20

    def __init__(self, fault: str, above_s: float = 0.0) -> None:
        super().__init__()
        self.fault, self.above = fault, int(above_s * SR)
        self.weight = torch.nn.Parameter(torch.ones(8))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return _good_frames(audio, self.weight)

    def encode_batch(self, waves):
        frames = [_good_frames(torch.from_numpy(w)[None], self.weight.detach())[0] for w in waves]
        if max(w.shape[0] for w in waves) <= self.above:
            return [f.numpy() for f in frames]
        fault = self.fault
        if fault == "rank":
            return [f.mean(0).numpy() for f in frames]
        if fault == "dim":
            return [f[:, :3].numpy() for f in frames]
        if fault == "batch":
            return [f.numpy() for f in frames[:-1]]
        if fault == "zero_frames":
            return [f.numpy() for f in frames[:-1]] + [frames[-1][:0].numpy()]
        if fault in ("nan", "inf"):
            frames[-1][0, 0] = float(fault)
            return [f.numpy() for f in frames]
        if fault == "hop":
            return [f.repeat_interleave(2, dim=0).numpy() for f in frames]
        if fault == "raises":
            raise RuntimeError("input too long for the positional embeddings")
        raise ValueError(fault)


# what each message must say was expected (plain module, own encode_batch)
EXPECTED = {
    "rank": (r"returned shape \(3, 8\), expected 3 dims \(batch, frames, 8\)",
             r"returned shape \(8,\) for clips 0 \(0.50 s\), 1 \(1.00 s\), 2 \(3.00 s\), expected 2 dims \(frames, 8\)"),
    "dim": (r"returned dim 3 but output_dim is 8",
            r"returned dim 3 for clips 0 \(0.50 s\), 1 \(1.00 s\), 2 \(3.00 s\) but output_dim is 8"),
    "batch": (r"returned batch size 2, expected 3 \(one row per clip\)", r"returned 2 outputs, expected 3 \(one per clip\)"),
    "zero_frames": (r"returned zero frames, expected about 150 for the longest clip \(3.00 s\) at hop_size_in_ms=20",
                    r"returned zero frames for clip 2 \(3.00 s\), expected about 150 at hop_size_in_ms=20"),
    "nan": (r"returned NaN or infinite values for clip 2 \(3.00 s\)",) * 2,
    "inf": (r"returned NaN or infinite values for clip 2 \(3.00 s\)",) * 2,
    "hop": (r"returned 300 frames for the longest clip \(3.00 s\), but hop_size_in_ms=20 means about 150 \(allowed 135-165\)",
            r"frame counts that do not match hop_size_in_ms=20 .*clip 0 \(0.50 s\): 50 frames, expected about 25"),
    "raises": (r"raised RuntimeError: input too long for the positional embeddings",) * 2,
}


def _waves() -> list[np.ndarray]:
    return [tone(300, 0.5), tone(500, 1.0), tone(700, 3.0)]


@pytest.mark.parametrize("own", [False, True], ids=["plain", "own_encode_batch"])
@pytest.mark.parametrize("fault", FAULTS)
def test_each_bad_batch_is_refused_with_encoder_batch_context_and_expectation(fault, own):
    encoder = load_encoder(BadOwn(fault) if own else BadPlain(fault))
    name = "BadOwn" if own else "BadPlain"
    with pytest.raises(EncoderContractError) as caught:
        encode_batch(encoder, _waves(), context=CONTEXT, strict_frames=True)
    message = str(caught.value)
    assert message.startswith(f"encoder {name} does not meet the xares-hf/X-ARES encoder contract")
    assert f"a batch of 3 clips of 0.50-3.00 s ({CONTEXT})" in message
    assert re.search(EXPECTED[fault][own], message), message
    if fault == "raises":  # chained to what the encoder raised, with a hint: it passed on 2 s but not on 3 s
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert "hint:" in message and "probe.batch_size_encode" in message and "crop_length" in message
    else:
        assert "hint:" not in message


@pytest.mark.parametrize("own", [False, True], ids=["plain", "own_encode_batch"])
def test_frame_count_is_only_checked_for_frame_level_tasks(own):
    encoder = load_encoder(BadOwn("hop") if own else BadPlain("hop"))
    frames = encode_batch(encoder, _waves(), context=CONTEXT)  # clip tasks pool the frames: no harm done
    assert [f.shape[1] for f in frames] == [8, 8, 8] and all(np.isfinite(f).all() for f in frames)
    assert [f.shape[0] for f in frames] == [50, 100, 300]


@pytest.mark.parametrize("own", [False, True], ids=["plain", "own_encode_batch"])
def test_good_batches_pass_every_check_and_old_calls_still_work(own):
    encoder = load_encoder(BadOwn("nan", above_s=5) if own else BadPlain("nan", above_s=5))
    frames = encode_batch(encoder, _waves(), context=CONTEXT, strict_frames=True)
    assert [f.shape for f in frames] == [(25, 8), (50, 8), (150, 8)]
    assert all(f.dtype == np.float32 for f in frames)
    assert [f.shape for f in encode_batch(encoder, _waves())] == [(25, 8), (50, 8), (150, 8)]
    assert encode_batch(encoder, []) == []


def test_nan_only_in_padding_frames_is_not_an_error():
    class PadNaN(BadPlain):
        def forward(self, audio):
            out = _good_frames(audio, self.weight).clone()
            out[0, -1] = float("nan")  # clip 0 is the short one: its last frames are padding, trimmed away
            return out

    frames = encode_batch(load_encoder(PadNaN("none")), [tone(300, 0.5), tone(500, 1.0)], strict_frames=True)
    assert [f.shape[0] for f in frames] == [25, 50] and all(np.isfinite(f).all() for f in frames)


def test_out_of_memory_on_a_short_batch_gets_the_hint():
    class Hungry(BadPlain):
        def forward(self, audio):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(EncoderContractError, match=r"forward\(audio of shape \(1, 8000\)\) on a batch of 1 clip of 0.50 s raised OutOfMemoryError") as caught:
        encode_batch(load_encoder(Hungry("none")), [tone(300, 0.5)])
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)
    assert "hint: the encoder ran out of memory" in str(caught.value)
    assert "lower the card's probe.batch_size_encode" in str(caught.value)


def test_good_encoders_meet_the_frame_check(tiny_models):
    waves = [tone(300, 0.1), tone(500, 1.37), tone(700, 4.0)]
    for encoder in (LogMelEncoder(), load_encoder(str(tiny_models["wav2vec2"])), load_encoder(str(tiny_models["whisper"]))):
        frames = encode_batch(encoder, waves, context=CONTEXT, strict_frames=True)
        assert len(frames) == 3 and all(f.shape[1] == encoder.output_dim for f in frames)


def test_transformers_encoder_output_is_checked_too(tiny_models):
    encoder = load_encoder(str(tiny_models["wav2vec2"]))
    hidden = encoder._hidden
    encoder._hidden = lambda inputs: hidden(inputs) * float("nan")
    with pytest.raises(EncoderContractError, match=r"encode_batch on a batch of 2 clips of 0.50-1.00 s \(ctx\) returned NaN") as caught:
        encode_batch(encoder, [tone(300, 0.5), tone(500, 1.0)], context="ctx")
    assert str(caught.value).startswith(f"encoder {tiny_models['wav2vec2']} does not meet")


# --- end to end: xares_hf.evaluate stops at the bad batch and writes nothing -------------------------------------


def _toy_task(root):
    """A clip task whose every split holds a few 0.5 s clips and one 3 s clip (key '<split>-long')."""
    for split in ("train", "valid", "test"):
        items = [(f"{split}{i}", tone(300 if i % 2 else 2000, 0.5), SR, {"label": "low" if i % 2 else "high"}) for i in range(6)]
        items.append((f"{split}-long", tone(300, 3.0), SR, {"label": "low"}))
        write_shards(items, root / "data" / "toy" / f"{split}-%03d.tar")
    return write_card(root / "toy.yaml")


def _assert_nothing_written(tmp_path):
    assert not list((tmp_path / "out").rglob("*.json")), "results were written for a failed run"
    assert not list((tmp_path / "c").rglob("*.safetensors")), "embeddings of a failed split were cached"


@pytest.mark.parametrize("own", [False, True], ids=["plain", "own_encode_batch"])
def test_evaluate_stops_at_nan_on_long_clips_and_writes_nothing(tmp_path, own):
    card = _toy_task(tmp_path)
    encoder = BadOwn("nan", above_s=2.5) if own else BadPlain("nan", above_s=2.5)
    with pytest.raises(EncoderContractError) as caught:
        evaluate(encoder, tasks=[card], data_dir=tmp_path / "data", cache_dir=tmp_path / "c", output_dir=tmp_path / "out")
    message = str(caught.value)
    assert "NaN or infinite values for clip" in message and "(3.00 s)" in message
    assert "task 'toy', split 'train'" in message and "'train-long'" in message
    assert re.search(r"a batch of \d clips? of [0-9.-]+3.00 s", message), message
    _assert_nothing_written(tmp_path)


def test_evaluate_chains_the_encoder_exception_with_a_hint(tmp_path):
    card = _toy_task(tmp_path)
    encoder = BadPlain("raises", above_s=2.5)
    with pytest.raises(EncoderContractError) as caught:
        evaluate(encoder, tasks=[card], data_dir=tmp_path / "data", cache_dir=tmp_path / "c", output_dir=tmp_path / "out")
    message = str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "encoder BadPlain" in message and "raised RuntimeError: input too long" in message
    assert "task 'toy', split 'train'" in message and "failed on clips of up to 3.00 s" in message
    assert "probe.batch_size_encode" in message
    _assert_nothing_written(tmp_path)


def test_evaluate_refuses_frames_off_the_declared_hop_on_a_frame_task(tmp_path):
    def make(split):
        return [(f"{split}{i}", tone_at(1000.0, 1.0, 0.2, 0.6), [{"onset": 0.2, "offset": 0.6, "label": "beep"}]) for i in range(4)]

    card = write_task(tmp_path / "data", "events", {
        "task_type": "frame", "metric": "segmentf1_macro",
        "labels": {"kind": "events", "field": "label", "num_classes": 2, "classes": ["beep", "hum"]},
        "probe": {"epochs": 2, "learning_rate": 0.01, "batch_size": 4}}, make)
    with pytest.raises(EncoderContractError) as caught:  # check_encoder only warns about the hop; the frame task refuses
        evaluate(BadPlain("hop"), tasks=[card], data_dir=tmp_path / "data", cache_dir=tmp_path / "c", output_dir=tmp_path / "out")
    message = str(caught.value)
    assert "task 'events', split 'train'" in message
    assert "returned 100 frames for the longest clip (1.00 s), but hop_size_in_ms=20 means about 50" in message
    assert "would not line up with this frame-level task's labels" in message
    _assert_nothing_written(tmp_path)

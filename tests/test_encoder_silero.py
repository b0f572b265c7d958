"""Silero VAD v6 as a frame-level encoder: contract, exact batching, fidelity to silero's own model,
and signs that the pretrained weights carry signal.

The ``silero-vad`` package is a project test dependency (its wheel ships the weights): these tests
fail, not skip, when it is missing.
"""

from __future__ import annotations

import importlib.metadata
import math
import shutil
import subprocess
import wave

import numpy as np
import pytest
import torch

from xares_hf.encoders import check_encoder, encode_batch
from xares_hf.encoders.silero import SileroVadEncoder, silero_jit_path

SR = 16_000
MISSING = (
    "the 'silero-vad' package is not installed in this environment; the project setup installs it "
    "(pip install --no-deps silero-vad)"
)


def _installed() -> bool:
    try:
        importlib.metadata.version("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def encoder() -> SileroVadEncoder:
    if not _installed():
        pytest.fail(MISSING)
    return SileroVadEncoder()


def speech_like(seconds: float = 2.0, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """A glottal pulse train with vibrato through moving vowel formants, modulated at a 4 Hz syllable rate."""
    from scipy.signal import lfilter

    n = int(SR * seconds)
    t = np.arange(n) / SR
    phase = np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    source = lfilter([1.0], [1.0, -0.95], (np.diff(np.floor(phase), prepend=0) > 0).astype(float))
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)]
    out, seg = np.zeros(n), n // 8
    for k in range(8):
        part = slice(k * seg, (k + 1) * seg if k < 7 else n)
        y = source[part]
        for fc, bw in zip(vowels[(k + seed) % 4], (80, 100, 120)):
            r, theta = math.exp(-math.pi * bw / SR), 2 * math.pi * fc / SR
            y = lfilter([1 - r], [1, -2 * r * math.cos(theta), r * r], y)
        out[part] = y
    out *= np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def espeak(text: str, folder) -> np.ndarray:
    from scipy.signal import resample_poly

    path = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=30)
    with wave.open(str(path)) as handle:
        sr = handle.getframerate()
        x = np.frombuffer(handle.readframes(handle.getnframes()), np.int16) / 32768.0
    g = math.gcd(SR, sr)
    return resample_poly(x, SR // g, sr // g).astype(np.float32)


def test_silero_vad_package_is_installed():
    assert _installed(), MISSING
    assert silero_jit_path().is_file()


def test_contract_hop_and_dim(encoder):
    report = check_encoder(encoder)
    assert not report.warnings, report.warnings
    assert (encoder.sampling_rate, encoder.output_dim, encoder.hop_size_in_ms) == (16_000, 256, 32.0)
    assert report.frames_per_second_measured in (31, 32)  # 1000 / 32 ms = 31.25
    version = importlib.metadata.version("silero-vad")
    assert encoder.identity["id"] == "silero-vad"
    assert encoder.identity["revision"] == f"silero-vad=={version}"
    with torch.inference_mode():
        for samples, frames in [(511, 1), (512, 1), (513, 2), (16_000, 32), (48_000, 94)]:
            assert encoder(torch.zeros(1, samples)).shape == (1, frames, 256)


def test_features_variants_and_bad_name():
    enc, lstm = SileroVadEncoder("encoder"), SileroVadEncoder("lstm")
    full = SileroVadEncoder()
    assert enc.output_dim == lstm.output_dim == 128
    audio = torch.from_numpy(speech_like(1.0))[None]
    with torch.inference_mode():
        both = full(audio)
        torch.testing.assert_close(both, torch.cat([enc(audio), lstm(audio)], dim=-1))
    assert len({enc.identity["layer"], lstm.identity["layer"], full.identity["layer"]}) == 3
    with pytest.raises(ValueError, match="features"):
        SileroVadEncoder("decoder")


def test_batch_of_different_lengths_is_exact(encoder):
    rng = np.random.default_rng(0)
    short = speech_like(0.7, seed=1)
    long = (0.05 * rng.standard_normal(30_000)).astype(np.float32)
    alone = [encode_batch(encoder, [w])[0] for w in (short, long)]
    batched = encode_batch(encoder, [short, long])
    assert [b.shape for b in batched] == [(22, 256), (59, 256)]
    for a, b in zip(alone, batched):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # a plain padded forward agrees too: padding at the end never reaches earlier frames
    padded = torch.zeros(2, 30_000)
    padded[0, : short.size] = torch.from_numpy(short)
    padded[1] = torch.from_numpy(long)
    with torch.inference_mode():
        out = encoder(padded)
    np.testing.assert_allclose(out[0, :22].numpy(), alone[0], atol=1e-5)


def test_finite_and_deterministic(encoder):
    audio = torch.from_numpy(np.stack([speech_like(1.5, seed=2), speech_like(1.5, f0=200, seed=3)]))
    with torch.inference_mode():
        first, second = encoder(audio), encoder(audio)
        fresh = SileroVadEncoder()(audio)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)
    torch.testing.assert_close(first, fresh, rtol=0, atol=0)


def test_reproduces_silero_streaming_probabilities(encoder):
    """The batched re-implementation gives silero's own per-chunk output (TorchScript, 512-sample stream)."""
    scripted = torch.jit.load(str(silero_jit_path()))
    audio = torch.from_numpy(speech_like(1.5, seed=4))
    padded = torch.nn.functional.pad(audio, (0, -audio.numel() % 512))
    with torch.inference_mode():
        reference = torch.stack([scripted(padded[i : i + 512][None], SR)[0, 0] for i in range(0, padded.numel(), 512)])
    ours = encoder.speech_probability(audio[None])[0]
    assert ours.shape == reference.shape == (47,)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


def test_does_not_change_torch_threads():
    before = torch.get_num_threads()
    SileroVadEncoder()
    assert torch.get_num_threads() == before  # importing silero_vad.model would set it to 1


def test_speech_differs_from_silence_and_is_detected(encoder, tmp_path):
    clips = {"silence": np.zeros(2 * SR, np.float32), "speech": speech_like(2.0)}
    if shutil.which("espeak-ng"):
        clips["espeak"] = espeak("the quick brown fox jumps over the lazy dog", tmp_path)
    with torch.inference_mode():
        feats = {k: encoder(torch.from_numpy(v)[None])[0] for k, v in clips.items()}
        probs = {k: encoder.speech_probability(torch.from_numpy(v)[None])[0] for k, v in clips.items()}
    silence = feats["silence"].mean(0)
    for name in set(clips) - {"silence"}:
        pooled = feats[name].mean(0)
        assert (pooled - silence).norm() > 0.2 * silence.norm() + 1.0, name
        assert probs[name].max() > 0.5, (name, probs[name].max())  # the pretrained VAD fires on speech
    assert probs["silence"].max() < 0.1
    if "espeak" in clips:
        assert (probs["espeak"] > 0.5).float().mean() > 0.5


def test_pooled_features_separate_tones_from_noise(encoder):
    from scipy.signal import lfilter
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    waves, labels = [], []
    for i in range(40):
        gain = 10 ** rng.uniform(-2, -0.5)
        if i % 2:
            f0 = rng.uniform(100, 800)
            x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 5))
        else:
            x = lfilter([1.0], [1.0, -rng.uniform(0.0, 0.95)], rng.standard_normal(t.size))
        waves.append((gain * x / np.abs(x).max()).astype(np.float32))
        labels.append(i % 2)
    pooled = np.stack([f.mean(0) for f in encode_batch(encoder, waves)])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    accuracy = cross_val_score(model, pooled, np.array(labels), cv=5).mean()
    assert accuracy >= 0.9, accuracy


def test_missing_package_names_the_install_command(monkeypatch):
    def not_found(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_found)
    with pytest.raises(ImportError, match="pip install silero-vad"):
        SileroVadEncoder()


def test_loads_by_name():
    from xares_hf import load_encoder

    encoder = load_encoder("silero-vad")
    assert isinstance(encoder, SileroVadEncoder) and encoder.identity["id"] == "silero-vad"

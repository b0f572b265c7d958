"""torchaudio's windowed-sinc resampler reproduced in torch (protocol xares-0.1.3), checked against its formula."""

import math

import numpy as np
import pytest
import soundfile as sf

from xares_hf.data import iter_audio, write_shards
from xares_hf.data.sinc_resample import sinc_resample


def _formula(x: np.ndarray, orig: int, new: int, width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """The resampling formula summed directly in float64, one output sample at a time."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    base = min(o, n) * rolloff
    i = np.arange(len(x))
    out = np.zeros(math.ceil(n * len(x) / o))
    for j in range(len(out)):
        t = np.clip(base * (i / o - j / n), -width, width)
        out[j] = np.sum(x * (base / o) * np.sinc(t) * np.cos(np.pi * t / (2 * width)) ** 2)
    return out


@pytest.mark.parametrize("orig, new", [(44_100, 16_000), (8_000, 16_000), (48_000, 16_000), (22_050, 24_000)])
def test_sinc_resample_is_the_windowed_sinc_formula(orig, new):
    x = np.random.default_rng(orig).standard_normal(1500).astype(np.float32)
    got = sinc_resample(x, orig, new)
    expected = _formula(x.astype(np.float64), orig, new)
    assert got.shape == expected.shape == (math.ceil(len(x) * new / orig),) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4)  # the filters are computed in float32, as torchaudio does
    stereo = sinc_resample(np.stack([x, -x]), orig, new)
    np.testing.assert_allclose(stereo, np.stack([got, -got]), atol=1e-6)


def test_sinc_resample_keeps_the_passband_and_removes_what_would_alias():
    t = np.arange(48_000) / 48_000
    low = sinc_resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 48_000, 16_000)
    high = sinc_resample(np.sin(2 * np.pi * 10_000 * t).astype(np.float32), 48_000, 16_000)  # above 8 kHz Nyquist
    middle = slice(1000, 15_000)
    reference = np.sin(2 * np.pi * 1000 * np.arange(16_000) / 16_000)
    np.testing.assert_allclose(low[middle], reference[middle], atol=0.01)
    assert np.abs(high[middle]).max() < 0.01  # at least 40 dB down
    assert sinc_resample(np.ones(5, np.float32), 16_000, 16_000).tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="positive integers"):
        sinc_resample(np.ones(5, np.float32), 44_100.5, 16_000)


def test_iter_audio_resamples_with_the_sinc_resampler_or_ffmpegs_when_asked(tmp_path):
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal(44_100)).astype(np.float32)
    write_shards([("clip", wave, 44_100, {"label": 0})], tmp_path / "train-000000.tar", fmt="flac")
    files = [str(tmp_path / "train-000000.tar")]
    sinc = [s.audio for s in iter_audio(files, 16_000, "toy", "train")]
    ffmpeg = [s.audio for s in iter_audio(files, 16_000, "toy", "train", resampler="ffmpeg")]
    sf.write(tmp_path / "clip.flac", wave, 44_100)
    native, _ = sf.read(tmp_path / "clip.flac", dtype="float32")  # what the shard holds (16-bit)
    np.testing.assert_allclose(sinc[0], sinc_resample(native, 44_100, 16_000), atol=1e-6)
    assert len(ffmpeg[0]) == len(sinc[0]) == 16_000
    assert 1e-4 < np.abs(ffmpeg[0] - sinc[0]).max() < 0.2  # two resamplers: close, not equal
    with pytest.raises(ValueError, match=r"resampler must be one of \('sinc', 'ffmpeg'\), got 'sox'"):
        list(iter_audio(files, 16_000, "toy", "train", resampler="sox"))


def test_a_long_clip_is_resampled_piece_by_piece_to_the_same_samples(monkeypatch):
    import xares_hf.data.sinc_resample as module

    rng = np.random.default_rng(3)
    for orig, new, n in ((8_000, 16_000, 50_001), (44_100, 16_000, 90_000), (16_000, 48_000, 30_000)):
        x = rng.standard_normal((2, n)).astype(np.float32)
        whole = sinc_resample(x, orig, new)
        monkeypatch.setattr(module, "CHUNK_SAMPLES", 4_097)  # pieces that split the clip at odd places
        pieces = sinc_resample(x, orig, new)
        monkeypatch.undo()
        assert pieces.shape == whole.shape and np.array_equal(pieces, whole)

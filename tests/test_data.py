import hashlib
import io
import tarfile

import numpy as np
import pytest

from helpers import tone, write_card
from xares_hf.data import DataError, crops, iter_audio, shard_files, write_shards
from xares_hf.tasks import load_task


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(x.size, 1 / sr)[spectrum.argmax()])


def test_audio_is_decoded_mono_and_resampled_to_the_encoder_rate(tmp_path):
    sr = 44_100
    t = np.arange(sr) / sr
    left = 0.4 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left], axis=1)
    files = write_shards([("k0", stereo, sr, {"label": "low"}), ("k1", left[: sr // 2], sr, {"label": "high"})], tmp_path / "train-%03d.tar", fmt="wav")
    samples = list(iter_audio(files, 16_000, "toy", "train"))
    assert [s.key for s in samples] == ["k0", "k1"]
    assert samples[0].audio.ndim == 1 and samples[0].audio.dtype == np.float32
    assert abs(samples[0].audio.shape[0] - 16_000) <= 1 and abs(samples[1].audio.shape[0] - 8_000) <= 1
    assert abs(_dominant_hz(samples[0].audio, 16_000) - 440) < 2
    assert 0.35 < np.abs(samples[0].audio).max() < 0.45  # down-mixed by mean, not summed
    assert samples[1].meta == {"label": "high"} and samples[1].url == files[0]


def test_crops_follow_xares():
    audio = np.arange(25, dtype=np.float32)
    assert [c.tolist() for c in crops(audio, 10, 1.0)] == [list(range(10)), list(range(10, 20))]
    short = crops(audio[:4], 10, 1.0)
    assert len(short) == 1 and short[0].shape == (10,) and short[0][4:].sum() == 0
    assert crops(audio, 10, None)[0] is audio


def test_cropped_samples_get_distinct_keys(tmp_path):
    files = write_shards([("long", tone(300, 2.5), 16_000, {"label": "low"})], tmp_path / "s-%03d.tar")
    samples = list(iter_audio(files, 16_000, "toy", "train", crop_length=1.0))
    assert [s.key for s in samples] == ["long#0", "long#1"] and all(s.audio.shape == (16_000,) for s in samples)


def test_missing_folder_and_empty_pattern_name_task_split_and_path(tmp_path):
    card = load_task(write_card(tmp_path / "toy.yaml"))
    with pytest.raises(DataError, match=r"task 'toy': data folder .*toy does not exist"):
        shard_files(card, tmp_path / "data")
    (tmp_path / "data" / "toy").mkdir(parents=True)
    write_shards([("a", tone(200), 16_000, {"label": "low"})], tmp_path / "data" / "toy" / "train-%03d.tar")
    with pytest.raises(DataError, match=r"task 'toy', split 'valid': no shard matches .*valid-\*\.tar"):
        shard_files(card, tmp_path / "data")


def test_shard_without_audio_or_unreadable_is_named(tmp_path):
    import tarfile, io

    bad = tmp_path / "train-000.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("k.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(DataError, match=r"task 'toy', split 'train': shard .*train-000.tar holds no audio"):
        list(iter_audio([str(bad)], 16_000, "toy", "train"))
    corrupt = tmp_path / "c.tar"
    corrupt.write_bytes(b"not a tar at all" * 10)
    with pytest.raises(DataError, match="cannot read shard"):
        list(iter_audio([str(corrupt)], 16_000, "toy", "train"))


def test_dotted_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match="contains a dot"):
        write_shards([("a.b", tone(200), 16_000, {})], tmp_path / "x-%03d.tar")


def test_shards_are_byte_identical_when_written_twice(tmp_path):
    samples = [(f"k{i}", tone(200 + 50 * i), 16_000, {"label": "low"}) for i in range(3)]
    a = write_shards(samples, tmp_path / "a" / "s-%03d.tar")
    b = write_shards(samples, tmp_path / "b" / "s-%03d.tar")
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
    assert [digest(p) for p in a] == [digest(p) for p in b]


def test_background_decoding_yields_the_same_samples_in_order_and_names_bad_samples(tmp_path):
    from xares_hf.data import prefetch_audio

    waves = [(f"k{i}", tone(200.0 + 50 * i, 0.1 + 0.05 * i), 16_000, {"label": "low"}) for i in range(12)]
    files = write_shards(waves, tmp_path / "train-%03d.tar", max_count=5)
    here = list(iter_audio(files, 16_000, "toy", "train"))
    ahead = list(prefetch_audio(files, 16_000, "toy", "train", workers=2, ahead=4))
    assert [s.key for s in ahead] == [s.key for s in here] == [f"k{i}" for i in range(12)]
    assert all(np.array_equal(a.audio, b.audio) and a.position == b.position for a, b in zip(ahead, here))
    bad = tmp_path / "bad-000.tar"
    with tarfile.open(bad, "w") as tar:
        for name, data in (("k0.flac", b"not audio at all"), ("k0.json", b'{"label": "low"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match=r"^task 'toy', split 'train', file .*bad-000\.tar, sample 'k0': cannot decode audio 'k0\.flac': .*Invalid data") as err:
        list(prefetch_audio([str(bad)], 16_000, "toy", "train", workers=2))
    assert "Traceback" not in str(err.value)  # the worker's traceback is not part of the message

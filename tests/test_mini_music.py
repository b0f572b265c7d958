"""xares-mini music tasks (fluidsynth + FluidR3 GM): labels, splits, cut alignment, determinism, learnability."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from xares_hf.suites.mini import music
from xares_hf.suites.mini.common import SR, SuiteBuildError, write_task
from xares_hf.tasks.card import TaskCard



@pytest.fixture(scope="module")
def builds():
    assert shutil.which("fluidsynth") and Path(music.SOUNDFONT).exists(), (
        "fluidsynth and fluid-soundfont-gm are missing: run scripts/setup.sh (as root it installs them)"
    )
    return {"instruments": music.build_instruments("tiny", 0), "notes": music.build_notes("tiny", 0)}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def test_cards_round_trip_and_sources(builds, tmp_path):
    for build in builds.values():
        write_task(tmp_path, build)
        card = TaskCard.from_yaml(tmp_path / "cards" / f"{build.card['name']}.yaml")
        assert card.domain == "music"
        assert set(build.splits) == {"train", "valid", "test"}
        assert {s["package"] for s in build.sources} == {"fluidsynth", "fluid-soundfont-gm"}
        for split, samples in build.splits.items():
            keys = [s.key for s in samples]
            assert len(set(keys)) == len(keys) and all("." not in k and k.startswith(split) for k in keys)
    assert TaskCard.from_yaml(tmp_path / "cards" / "mini_notes.yaml").task_type == "frame"


def test_instruments_classes_and_pitch_split(builds):
    build = builds["instruments"]
    classes = build.card["labels"]["classes"]
    assert len(classes) == build.card["labels"]["num_classes"] == 8
    pitches = {}
    for split, samples in build.splits.items():
        assert {s.meta["instrument"] for s in samples} == set(classes), split  # every class in every split
        pitches[split] = {(s.meta["instrument"], s.meta["pitch"]) for s in samples}
    for a, b in (("train", "test"), ("train", "valid"), ("valid", "test")):
        assert not pitches[a] & pitches[b]
        assert not {p for _, p in pitches[a]} & {p for _, p in pitches[b]}  # disjoint across instruments too
    # each instrument spans about two octaves in training
    for name in classes:
        train = [p for n, p in pitches["train"] if n == name]
        assert max(train) - min(train) >= 12


def test_instrument_audio(builds):
    for samples in builds["instruments"].splits.values():
        for s in samples:
            assert s.sr == SR and s.audio.dtype == np.float32 and s.audio.shape == (SR,)
            assert np.isfinite(s.audio).all() and np.abs(s.audio).max() > 0.3
            # the note starts at the clip's start (after fluidsynth's ~4-6 ms of latency), not before it
            peak = float(np.abs(s.audio).max())
            assert np.abs(s.audio[: int(0.004 * SR)]).max() < 0.01 * peak
            assert _rms(s.audio[: SR // 10]) > 0.01
            first = np.flatnonzero(np.abs(s.audio) > 0.01 * peak)[0]
            assert first < 0.03 * SR


def test_note_events_inside_clips_and_aligned(builds):
    build = builds["notes"]
    classes = set(build.card["labels"]["classes"])
    seen = set()
    for split, samples in build.splits.items():
        for s in samples:
            audio, duration = s.audio, s.audio.size / SR
            assert s.sr == SR and audio.dtype == np.float32 and np.isfinite(audio).all()
            assert 4.0 <= duration <= 6.0 and audio.size % (SR // 100) == 0
            assert s.meta and all(set(e) == {"start", "end", "note"} for e in s.meta)
            peak = float(np.abs(audio).max())
            assert peak > 0.3
            starts = sorted(e["start"] for e in s.meta)
            # silence before the first note, then sound within a few ms of its MIDI onset: the cut is aligned
            first = starts[0]
            assert _rms(audio[: int((first - 0.005) * SR)]) < 1e-4
            assert first <= np.flatnonzero(np.abs(audio) > 0.01 * peak)[0] / SR < first + 0.03
            for e in s.meta:
                assert 0 <= e["start"] < e["end"] <= duration
                assert 0.15 - 1e-9 <= e["end"] - e["start"] <= 0.8 + 1e-9
                assert str(e["note"]) in classes
                a = int(e["start"] * SR)
                assert _rms(audio[a : a + SR // 10]) > 0.02 * peak, (split, s.key, e)
                seen.add(str(e["note"]))
    assert len(seen) >= 0.8 * len(classes)
    # occasional chords: some clips have two notes starting together
    assert any(len({e["start"] for e in s.meta}) < len(s.meta) for ss in build.splits.values() for s in ss)


def test_deterministic(builds):
    again = {"instruments": music.build_instruments("tiny", 0), "notes": music.build_notes("tiny", 0)}
    for task, build in builds.items():
        for split, samples in build.splits.items():
            other = again[task].splits[split]
            assert [s.key for s in samples] == [s.key for s in other]
            assert [s.meta for s in samples] == [s.meta for s in other]
            assert all(np.array_equal(a.audio, b.audio) for a, b in zip(samples, other))
        assert build.card == again[task].card


def test_missing_soundfont_is_a_build_error(monkeypatch, tmp_path):
    monkeypatch.setattr(music, "SOUNDFONT", str(tmp_path / "no-such.sf2"))
    for builder in (music.build_instruments, music.build_notes):
        with pytest.raises(SuiteBuildError, match="fluid"):
            builder("tiny", 0)


def test_instruments_learnable_from_log_mel(builds):
    import torch  # noqa: F401
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from xares_hf.encoders import LogMelEncoder

    encoder = LogMelEncoder()

    def features(samples):
        with torch.no_grad():
            frames = encoder(torch.as_tensor(np.stack([s.audio for s in samples])))
        return frames.mean(1).numpy(), [s.meta["instrument"] for s in samples]

    x_train, y_train = features(builds["instruments"].splits["train"])
    x_test, y_test = features(builds["instruments"].splits["test"])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_train, y_train)
    assert model.score(x_test, y_test) >= 0.6

"""scripts/benchmark.py --paper-scale: synthetic X-ARES-sized tasks run end to end, figures printed and in the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "benchmark.py"), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def two_scales(tmp_path_factory) -> tuple[dict, str, Path]:
    """esc50 (5 folds of 5 s clips) at two tiny scales with a small random-projection encoder."""
    work = tmp_path_factory.mktemp("paper")
    out = _bench("--paper-scale", "0.005", "0.01", "--tasks", "esc50", "--encoder", "random-projection",
                 "--width", "32", "--frame-rate", "25", "--work", str(work), "--json", str(work / "out.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((work / "out.json").read_text()), out.stdout, work


def test_figures_are_measured_and_sane(two_scales):
    report, stdout, _ = two_scales
    runs = report["runs"]
    assert [(r["task"], r["F"]) for r in runs] == [("esc50", 0.005), ("esc50", 0.01)]
    for run in runs:
        assert run["clips"] == 5 * round(400 * run["F"]) > 0  # 400 clips per fold, scaled
        assert run["hours"] == pytest.approx(run["clips"] * 5.0 / 3600)  # every ESC-50 clip lasts 5 s
        assert run["peak_anon_mb"]["run"] > 0 and run["peak_rss_mb"]["run"] >= run["peak_anon_mb"]["run"]
        assert run["peak_anon_mb"]["encoding"] > 0 and run["peak_anon_mb"]["probes"] > 0  # samples tagged by stage
        assert run["store_bytes"] > 0
        assert run["phases_s"]["probe training"] > 0 and run["wall_s"] > 0
        at = run["at_F1"]
        assert at["factor"] == pytest.approx(1 / run["F"])
        assert at["wall_s"] == pytest.approx(run["wall_s"] / run["F"])
        assert at["store_bytes"] == pytest.approx(run["store_bytes"] / run["F"])
        assert at["hours"] == pytest.approx(run["hours"] / run["F"]) and at["clips"] == 2000
        for phase, seconds in run["phases_s"].items():
            assert at["phases_s"][phase] == pytest.approx(seconds / run["F"])
    assert runs[1]["store_bytes"] > runs[0]["store_bytes"]  # twice the clips, a bigger store
    growth = report["memory_growth"][0]
    slope = (runs[1]["peak_anon_mb"]["run"] - runs[0]["peak_anon_mb"]["run"]) / (runs[1]["hours"] - runs[0]["hours"])
    assert growth["peak_anon_mb_run_per_hour"] == pytest.approx(slope)
    assert growth["peak_anon_mb_run_at_F1"] == pytest.approx(runs[1]["peak_anon_mb"]["run"] + slope * (2000 * 5 / 3600 - runs[1]["hours"]))
    assert "esc50 (clip) F=0.005: 10 clips" in stdout and "esc50 (clip) F=0.01: 20 clips" in stdout
    assert "peak anon (RssAnon): run" in stdout and "embedding store on disk" in stdout and "memory growth" in stdout


def test_shards_are_written_once_and_reused(two_scales):
    from paper_scale_tasks import build_task

    _, _, work = two_scales
    root = work / "data" / "esc50-F0.01-trainF-evalF-seed0-flac"
    shard = next((root / "esc50").glob("wds-audio-fold-1-*.tar"))
    before = shard.stat().st_mtime_ns
    card, manifest = build_task("esc50", root, 0.01)
    assert shard.stat().st_mtime_ns == before and manifest["clips"] == 20 and card.is_file()


def test_frame_task_with_fixed_split_sizes(tmp_path):
    """DESED-like events with --train-clips/--eval-clips; F = 1 figures then scale by full clips / clips."""
    out = _bench("--paper-scale", "0.001", "--tasks", "desed", "--train-clips", "6", "--eval-clips", "3",
                 "--work", str(tmp_path), "--json", str(tmp_path / "out.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = json.loads((tmp_path / "out.json").read_text())["runs"]
    assert run["clips_per_split"] == {"train": 6, "test": 3}  # DESED's valid and test are the same shards
    assert run["hours"] == pytest.approx(9 * 10 / 3600) and run["store_bytes"] > 0 and run["peak_anon_mb"]["run"] > 0
    assert run["at_F1"]["factor"] == pytest.approx((10000 + 1153) / 9)
    assert run["at_F1"]["wall_s"] == pytest.approx(run["wall_s"] * (10000 + 1153) / 9)
    assert "not extrapolated" in out.stdout


def test_random_projection_meets_the_encoder_contract():
    from paper_scale_tasks import RandomProjectionEncoder

    from xares_hf import check_encoder

    report = check_encoder(RandomProjectionEncoder(width=48, frame_rate=40))
    assert (report.output_dim, report.hop_size_in_ms, report.frames_per_second_measured) == (48, 25.0, 40)
    assert not report.warnings


def test_random_wav2vec2_gives_every_hidden_state(tmp_path):
    """--encoder wav2vec2: a saved random model, ``width``-d at 50 frames/s, with ``layers + 1`` hidden states."""
    from paper_scale_tasks import save_random_wav2vec2

    from xares_hf import check_encoder, load_encoder

    folder = save_random_wav2vec2(tmp_path / "w2v", width=24, layers=2)
    report = check_encoder(str(folder))
    assert (report.output_dim, report.hop_size_in_ms) == (24, 20.0)
    encoder = load_encoder(str(folder), layer="all")
    assert (encoder.stacked_layers, encoder.output_dim) == (3, 72)

"""scripts/speed_vs_xares.py without xares itself (that half needs xares 0.1.3's own venv, never in the tests):
the timed xares-hf child on tiny synthetic data, the clean-up of xares' outputs and the table."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import compare_with_xares as cmp  # noqa: E402
import speed_vs_xares as speed  # noqa: E402


def test_the_xares_hf_half_times_a_fresh_run_in_a_child_python(tmp_path, monkeypatch):
    monkeypatch.setitem(cmp.COUNTS, "speechcommandsv1", {"train": 20, "valid": 6, "test": 8})
    env = tmp_path / "env"
    cmp.make_data(env, ["speechcommandsv1"])
    (tmp_path / "run" / "hf-cache" / "stale").mkdir(parents=True)  # a cache left by an earlier run is emptied
    hf = speed.time_xares_hf(speed.ENCODER, env, tmp_path / "run", ["speechcommandsv1"], 42, "xares-hf")
    stages = hf["tasks"]["speechcommandsv1"]
    assert stages["encode"] > 0 and stages["probe"] > 0
    assert hf["wall"] > stages["encode"] + stages["probe"]  # the child's start and imports count too
    assert not (tmp_path / "run" / "hf-cache" / "stale").exists()
    assert (tmp_path / "run" / "xares-hf.log").exists()


def test_xares_outputs_are_cleared_and_the_table_gives_ratios_and_the_verdict(tmp_path, capsys):
    for name in ("embeddings/Enc/wds-encoded-x-000000.tar", "checkpoints/Enc/best.ckpt", "wds-audio-x-000000.tar"):
        (tmp_path / "t" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / name).touch()
    speed.clear_xares_outputs(tmp_path, ["t"])
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["wds-audio-x-000000.tar"]  # the data is kept

    xares = {"wall": 30.0, "tasks": {"t": {"encode": 6.0, "probe": 20.0}}}
    hf = {"wall": 9.0, "tasks": {"t": {"encode": 3.0, "probe": 4.0}}}
    rows = speed.rows_of(xares, hf, ["t"])
    assert [(r["stage"], round(r["ratio"], 3)) for r in rows] == [
        ("encode", 0.5), ("probe", 0.2), ("other", 0.5), ("wall", 0.3)]
    speed.print_table(rows, "run 1")
    assert "ratio 0.300: met" in capsys.readouterr().out
    speed.print_table(speed.rows_of(xares, {**hf, "wall": 12.0}, ["t"]), "run 2")
    assert "ratio 0.400: NOT met" in capsys.readouterr().out

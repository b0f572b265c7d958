"""scripts/stage_costs.py and scripts/gpu_throughput.py on a few clips: every stage measured, every clip encoded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))


def _check_end_to_end(report: dict, clips: int) -> None:
    e2e = report["end_to_end"]
    assert report["clips"] == e2e["encoded_clips"] == clips  # evaluate encoded every clip, with an empty cache
    assert e2e["encode_s"] > 0 and set(e2e["per_split_s"]) == {"train", "valid", "test"}
    assert report["ratio_end_to_end_to_forward_plus_decode"] > 0
    assert report["sum_of_stages_s"] > 0


def test_stage_costs_log_mel(tmp_path, capsys):
    """A plain module at 22.05 kHz files: read, decode, resample, forward, checks and cache write are timed."""
    import stage_costs

    out = tmp_path / "stages.json"
    report = stage_costs.main(["--clips", "8", "--seconds", "0.5", "1.5", "--native-rate", "22050", "--repeats", "1",
                               "--work", str(tmp_path), "--json", str(out)])
    stages = report["stages_s"]
    for name in ("read", "decode", "encoder forward", "cache write"):
        assert stages[name] > 0, name
    assert isinstance(stages["resample"], float) and isinstance(stages["checks"], float)  # differences: may be ~0
    assert stages["feature extraction"] is None and stages["copies host -> device"] is None  # plain module, CPU
    assert report["resample_to"] == report["encoder_rate"] == 16_000
    _check_end_to_end(report, 8)
    assert json.loads(out.read_text())["stages_s"] == stages
    table = capsys.readouterr().out
    for row in ("read (stream_split rows)", "decode (native 22050 Hz)", "resample (to 16000 Hz)", "encoder forward",
                "checks (encode_batch wrapper)", "cache write (write_entry)", "end to end (evaluate: ensure_cached)"):
        assert row in table, row
    assert "n/a (a plain module)" in table and "n/a (on the CPU)" in table


def test_stage_costs_transformers_encoder(tmp_path):
    """A random wav2vec2: its feature extractor and raw forward (replayed on the recorded inputs) are timed apart."""
    import stage_costs

    report = stage_costs.main(["--clips", "6", "--encoder", "random-wav2vec2", "--repeats", "1", "--work", str(tmp_path)])
    stages = report["stages_s"]
    assert stages["feature extraction"] > 0 and stages["encoder forward"] > 0
    assert stages["resample"] is None and "encode_batch rest" in stages
    _check_end_to_end(report, 6)


def test_gpu_throughput_dry_run(tmp_path, capsys):
    """--device cpu --small: raw forward, first encode_batch pass and evaluate's encoding of one family."""
    import gpu_throughput

    out = tmp_path / "gpu.json"
    report = gpu_throughput.main(["--device", "cpu", "--small", "--clips", "6", "--seconds", "1", "3", "--families",
                                  "hubert-base", "--precisions", "fp32", "--work", str(tmp_path), "--out", str(out)])
    (run,) = report["runs"]
    assert run["family"] == "hubert-base" and run["precision"] == "fp32" and run["clips"] == 6
    for kind in ("raw_forward", "encode_batch_first_pass", "end_to_end"):
        assert run[kind]["clips_per_s"] > 0 and run[kind]["audio_s_per_s"] > 0, kind
    assert run["end_to_end_share_of_raw"] > 0 and run["model_calls"] > 0
    assert json.loads(out.read_text())["runs"] == report["runs"]
    assert "hubert-base" in capsys.readouterr().out


def test_benchmark_dispatches_stages():
    out = subprocess.run([sys.executable, str(SCRIPTS / "benchmark.py"), "--stages", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "benchmark.py --stages" in out.stdout and "--native-rate" in out.stdout

"""scripts/compare_with_xares.py without xares itself (that half runs only in its own venv, never in the tests):
the data it writes, the xares-hf half in both protocols, and its verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import compare_with_xares as cmp  # noqa: E402

from xares_hf import check_encoder  # noqa: E402
from xares_hf.data import shard_files  # noqa: E402
from xares_hf.tasks import load_task  # noqa: E402

ENCODER = SCRIPTS / "logmel_projection_encoder.py"


def test_the_shared_encoder_file_meets_the_contract():
    report = check_encoder(str(ENCODER))
    assert (report.sampling_rate, report.output_dim, report.hop_size_in_ms) == (16_000, 128, 20)


def test_data_in_x_ares_layout_and_both_protocols_of_xares_hf_on_it(tmp_path, monkeypatch):
    monkeypatch.setitem(cmp.COUNTS, "librispeechmalefemale", {"train": 12, "valid": 4, "test": 6})
    monkeypatch.setitem(cmp.COUNTS, "esc50", 6)
    env = tmp_path / "env"
    cmp.make_data(env, ["librispeechmalefemale", "esc50"])
    for task in ("librispeechmalefemale", "esc50"):
        files = shard_files(load_task(task), env)  # the shipped card's patterns find one shard per split or fold
        assert all(len(f) == 1 for f in files.values()) and len(files) == (5 if task == "esc50" else 3)
    old = cmp.run_xares_hf(ENCODER, env, tmp_path, [42], ["librispeechmalefemale"], "xares-0.1.3")
    new = cmp.run_xares_hf(ENCODER, env, tmp_path, [42], ["librispeechmalefemale"], "xares-hf")
    assert sum(old["librispeechmalefemale"]["crops_left_out"].values()) > 0  # 6-16 s clips: 1-3 crops of 5 s
    assert new["librispeechmalefemale"]["crops_left_out"] == {}
    assert 0 <= old["librispeechmalefemale"]["knn"] <= 1 and len(old["librispeechmalefemale"]["mlp"]) == 1


def test_verdicts_flag_a_knn_difference_over_0_001_and_an_mlp_mean_outside_xares_range(capsys):
    xares = {"t": {"mlp": [0.50, 0.52, 0.54], "knn": 0.400, "read_back": {}}}
    close = {"t": {"mlp": [0.51, 0.53, 0.52], "knn": 0.4005, "crops_left_out": {}}}
    far = {"t": {"mlp": [0.60, 0.61, 0.62], "knn": 0.402, "crops_left_out": {}}}
    [good] = cmp.compare(xares, close, close, ["t"])
    [bad] = cmp.compare(xares, far, far, ["t"])
    assert good["knn_matches"] and good["mlp_inside_spread"]
    assert not bad["knn_matches"] and bad["knn_difference"] == pytest.approx(0.002) and not bad["mlp_inside_spread"]
    cmp.print_table([good, bad])
    out = capsys.readouterr().out.splitlines()
    assert "k-NN yes, MLP inside xares' spread" in out[2] and "k-NN no (0.0020), MLP outside xares' spread" in out[3]

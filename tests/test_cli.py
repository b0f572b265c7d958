import json
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import hub_cache_layout

XARES_HF = [sys.executable, "-m", "xares_hf.cli"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _run(args, env_extra=None, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_evaluate_prints_the_table_and_writes_results(tiny_suite, tmp_path):
    out = _run(XARES_HF + ["evaluate", "log-mel", "--tasks", str(tiny_suite / "cards"), "--data-dir", str(tiny_suite),
                           "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out")])
    assert out.returncode == 0, out.stderr
    assert "Synthetic vowels" in out.stdout and "Weighted average" in out.stdout
    saved = json.loads((tmp_path / "out" / "xares-hf__log-mel" / "results.json").read_text())
    assert f"{saved['averages']['mlp']:.3f}" in out.stdout


def test_hub_id_loads_offline_from_the_hub_cache(tiny_suite, tiny_models, tmp_path):
    hub = tmp_path / "hub"
    hub_cache_layout(tiny_models["wav2vec2"], hub, "org/my-encoder", COMMIT)
    code = textwrap.dedent(
        f"""
        import xares_hf
        r = xares_hf.evaluate("org/my-encoder", tasks=[{str(tiny_suite / 'cards' / 'synth_vowel.yaml')!r}],
                              data_dir={str(tiny_suite)!r}, cache_dir={str(tmp_path / 'cache')!r}, output_dir={str(tmp_path / 'out')!r})
        print("MLP", r["synth_vowel"].mlp)
        """
    )
    out = _run([sys.executable, "-c", code], {"HF_HUB_CACHE": str(hub), "HF_HOME": str(tmp_path / "hf_home")})
    assert out.returncode == 0, out.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "org__my-encoder" / "results.json").read_text())
    assert saved["encoder"]["id"] == "org/my-encoder" and saved["encoder"]["revision"] == COMMIT
    # not in the cache and offline: a clear error, not a hang or a traceback
    missing = _run(XARES_HF + ["check", "org/absent"], {"HF_HUB_CACHE": str(hub)})
    assert missing.returncode == 2 and "cannot load transformers model 'org/absent'" in missing.stderr


def test_check_reports_a_broken_encoder_file(tmp_path):
    path = tmp_path / "bad_encoder.py"
    path.write_text(textwrap.dedent(
        """
        import torch

        class BadEncoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.sampling_rate = 16000
                self.output_dim = 16
                self.hop_size_in_ms = 10

            def forward(self, audio):
                return torch.zeros(audio.shape[0], audio.shape[1] // 160, 12)
        """
    ))
    out = _run(XARES_HF + ["check", str(path)])
    assert out.returncode == 2
    assert "returned dim 12 but output_dim is 16" in out.stderr and "Traceback" not in out.stderr


def test_tasks_lists_the_shipped_cards():
    out = _run(XARES_HF + ["tasks"])
    assert out.returncode == 0
    assert "esc50" in out.stdout and "5 folds" in out.stdout and "VoxCeleb1" in out.stdout


def test_seeds_and_layer_options_from_the_command_line(tiny_suite, tmp_path, capsys):
    from xares_hf.cli import main

    card = str(tiny_suite / "cards" / "synth_vowel.yaml")
    assert main(["evaluate", "log-mel", "--tasks", card, "--data-dir", str(tiny_suite), "--cache-dir", str(tmp_path / "c"),
                 "--output-dir", str(tmp_path / "o"), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    saved = json.loads(next((tmp_path / "o").rglob("results.json")).read_text())
    task = saved["tasks"][0]
    assert [r["seed"] for r in task["seed_runs"]] == [42, 43] and saved["run"]["seeds"] == 2
    assert f"{task['mlp_score']:.3f} ± " in out  # the table shows the spread over seeds
    with pytest.raises(SystemExit):
        main(["evaluate", "log-mel", "--layer", "best"])
    assert "expected a layer index, 'all' or 'weighted'" in capsys.readouterr().err

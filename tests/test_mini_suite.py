"""xares-mini at size 'tiny': built from real audio, deterministic, and every task type runs end to end."""

import hashlib
import json
import subprocess
import sys

import pytest
import yaml

from xares_hf import evaluate
from xares_hf.suites import build_mini_suite
from xares_hf.suites.mini import SuiteBuildError, speech
from xares_hf.tasks import load_tasks

TASK_TYPES = {"clip", "frame", "contrastive", "asr"}


@pytest.fixture(scope="session")
def tiny_mini(tmp_path_factory):
    return build_mini_suite(tmp_path_factory.mktemp("mini") / "tiny", size="tiny", seed=0)


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.tar"))}


def test_every_task_type_and_metric_is_covered(tiny_mini):
    cards = load_tasks([tiny_mini / "cards"])
    assert len(cards) == 10
    assert {c.task_type for c in cards} == TASK_TYPES
    assert {c.metric for c in cards} == {"accuracy", "mAP", "segmentf1_macro", "segmentf1_micro", "recallatk_r1", "WER_inv"}
    assert {c.domain for c in cards} == {"speech", "sound", "music"}
    readme = (tiny_mini / "README.md").read_text()
    for source in ("espeak-ng", "fluid-soundfont-gm", "ufoai-sound"):
        assert source in readme
    configs = yaml.safe_load(readme.split("---")[1])["configs"]
    assert {c["config_name"] for c in configs} == {c.name for c in cards}


def test_build_is_deterministic_and_idempotent(tiny_mini, tmp_path):
    again = build_mini_suite(tmp_path / "again", size="tiny", seed=0)
    assert _digests(again) == _digests(tiny_mini)
    stamp = (again / "BUILT.json").stat().st_mtime
    build_mini_suite(again, size="tiny", seed=0)  # complete build of the same stamp: nothing is redone
    assert (again / "BUILT.json").stat().st_mtime == stamp
    other = build_mini_suite(tmp_path / "other", size="tiny", seed=1, tasks=["mini_keywords"])
    assert _digests(other)["mini_keywords/test-000000.tar"] != _digests(tiny_mini)["mini_keywords/test-000000.tar"]


def test_every_task_runs_end_to_end_on_the_baseline(tiny_mini, tmp_path):
    results = evaluate("log-mel", tasks=[tiny_mini / "cards"], data_dir=tiny_mini, cache_dir=tmp_path, output_dir=None)
    assert len(results.tasks) == 10
    for task in results.tasks:
        assert 0.0 <= task.mlp <= 1.0 and task.eval_size > 0
        assert (task.knn is not None) == (task.name in {"mini_keywords", "mini_language", "mini_gender", "mini_sounds", "mini_instrument"})
    assert results["mini_digits"].details["asr_head"] == "ctc"
    assert results["mini_sound_captions"].details["tokenizer"] == "trained-wordpiece"


def test_missing_system_package_says_how_to_install(monkeypatch):
    speech.variants.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SuiteBuildError, match="apt-get install espeak-ng"):
        speech.build_keywords("tiny", 0)
    speech.variants.cache_clear()


def test_cli_builds_and_prints_where(tmp_path):
    out = subprocess.run([sys.executable, "-m", "xares_hf.cli", "mini", "build", "--size", "tiny", "--out", str(tmp_path / "m"),
                          "--tasks", "mini_language"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(tmp_path / "m") in out.stdout
    assert json.loads((tmp_path / "m" / "BUILT.json").read_text())["tasks"] == ["mini_language"]

"""The three ways to load the modules offline: by path, as xares/<name> from a local folder, from the module cache."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xares_hf.metric_modules import metric_path, module_names

EXPECTED = {"accuracy", "iwer", "mean_average_precision", "recall_at_k", "segment_f1", "xares_score"}


def _python(code: str, cwd: Path, env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    env.pop("HF_EVALUATE_OFFLINE", None)  # prove the fallback works without evaluate's own offline switch too
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_module_is_a_complete_space_folder():
    assert EXPECTED <= set(module_names())
    for name in module_names():
        folder = Path(metric_path(name))
        card = (folder / "README.md").read_text()
        assert card.startswith("---\n") and "sdk: gradio" in card and "app_file: app.py" in card
        assert "- evaluate" in card and "- metric" in card
        for section in ("## Metric Description", "## How to Use", "## Limitations", "## Citation"):
            assert section in card, f"{name}/README.md lacks {section}"
        assert f'evaluate.load("xares/{name}")' in (folder / "app.py").read_text()
        assert "evaluate" in (folder / "requirements.txt").read_text()
        source = (folder / f"{name}.py").read_text()
        for const in ("_CITATION", "_DESCRIPTION", "_KWARGS_DESCRIPTION", "evaluate.Metric", "def _info", "def _compute"):
            assert const in source, f"{name}.py lacks {const}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loads_by_local_path(name):
    import evaluate

    module = evaluate.load(metric_path(name))
    assert module.name == name and module.citation and module.features


def test_xares_id_resolves_to_a_local_folder_first(tmp_path):
    shutil.copytree(metric_path("xares_score"), tmp_path / "xares" / "xares_score")
    code = "import evaluate; print(evaluate.load('xares/xares_score').compute(scores=[1, 0], weights=[3, 1])['score'])"
    out = _python(code, tmp_path, {"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0.75"


def test_after_register_metrics_xares_ids_load_offline_anywhere(tmp_path):
    register = "import xares_hf; print(len(xares_hf.register_metrics()))"
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    out = _python(register, tmp_path, env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) == len(module_names())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import evaluate\n"
        "print(evaluate.load('xares/iwer').compute(predictions=['a b'], references=['a c'])['iwer'])\n"
        "print(evaluate.load('xares/accuracy').compute(predictions=[1, 0], references=[1, 1])['accuracy'])\n"
    )
    out = _python(code, elsewhere, env)  # a fresh process: nothing of xares_hf imported
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0.5", "0.5"]


def test_publish_dry_run_lists_every_file_and_uploads_nothing(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "publish_metrics.py"
    out = _python(f"import runpy, sys; sys.argv = ['publish', '--dry-run']; runpy.run_path({str(script)!r}, run_name='__main__')",
                  tmp_path, {"HF_HUB_OFFLINE": "1", "HF_TOKEN": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    for name in module_names():
        assert f"space xares/{name} (sdk gradio)" in out.stdout
        for f in ("README.md", "app.py", "requirements.txt", f"{name}.py"):
            assert f"  {f}  (" in out.stdout
    assert "nothing uploaded" in out.stdout


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_docstring_examples_run(name):
    """The runnable examples of each module's keyword-argument docs (attached to its Metric class) pass."""
    import doctest
    import importlib.util
    import inspect

    import evaluate

    spec = importlib.util.spec_from_file_location(f"xares_{name}_doctest", Path(metric_path(name)) / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metric = next(c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, evaluate.Metric) and c is not evaluate.Metric)
    tests = [t for t in doctest.DocTestFinder().find(metric) if t.examples]
    assert tests, f"{name}: the metric docstring has no runnable examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0

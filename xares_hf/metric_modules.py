"""Where xares-hf's ``evaluate`` modules live, and how ``evaluate.load("xares/<name>")`` finds them offline.

The modules are the folders under the repository's ``metrics/`` (shipped in the package as
``xares_hf/evaluate_modules``). Each is published as the Space ``xares/<name>``; until a machine
can reach the Hub, :func:`register_metrics` puts them where ``evaluate`` looks for a cached
community module (``$HF_MODULES_CACHE/evaluate_modules/metrics/xares--<name>/<sha256>/<name>.py``),
so ``evaluate.load("xares/<name>")`` works offline from any working directory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .paths import atomic_write_bytes, child_path

HUB_NAMESPACE = "xares"


def metrics_dir() -> Path:
    """The folder holding the modules (``$XARES_HF_METRICS_DIR`` overrides the packaged one)."""
    candidates = [os.environ.get("XARES_HF_METRICS_DIR"), Path(__file__).resolve().parent / "evaluate_modules"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise FileNotFoundError("cannot find the xares-hf metric modules folder; set XARES_HF_METRICS_DIR")


def module_names() -> list[str]:
    """Every module shipped: folders with a ``<name>/<name>.py`` script."""
    return sorted(p.name for p in metrics_dir().iterdir() if (p / f"{p.name}.py").is_file())


def metric_path(name: str) -> str:
    """Local path of one module folder, loadable with ``evaluate.load(path)`` offline."""
    path = child_path(metrics_dir(), name, "metric module")
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(f"metric module '{name}' not found in {metrics_dir()} (have: {', '.join(module_names())})")
    return str(path)


def _evaluate_modules_cache() -> Path:
    from evaluate.loading import init_dynamic_modules  # the folder evaluate.load reads

    return Path(init_dynamic_modules())


def register_metrics() -> list[str]:
    """Make ``evaluate.load("xares/<name>")`` work offline for every shipped module; returns the ids.

    Each script is copied into evaluate's module cache under the hash of its content, exactly where
    evaluate falls back to when the Hub cannot be reached; rerunning is cheap and idempotent.
    """
    cache = _evaluate_modules_cache() / "metrics"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "__init__.py").touch(exist_ok=True)
    ids = []
    for name in module_names():
        script = metrics_dir() / name / f"{name}.py"
        digest = hashlib.sha256(script.read_bytes()).hexdigest()
        target = cache / f"{HUB_NAMESPACE}--{name}" / digest
        if not (target / f"{name}.py").is_file():
            target.mkdir(parents=True, exist_ok=True)
            (target / "__init__.py").touch()
            atomic_write_bytes(target / f"{name}.py", script.read_bytes())
        os.utime(target / f"{name}.py")  # evaluate picks the most recently modified hash
        ids.append(f"{HUB_NAMESPACE}/{name}")
    return ids

"""Scores through the project's published ``evaluate`` modules (``metrics/<name>``), one implementation each."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricSpec:
    """How a card's metric name is computed and normalised to 0-1 (worst -> 0, best -> 1)."""

    module: str
    key: str
    worst: float = 0.0
    best: float = 1.0


METRICS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec(module="accuracy", key="accuracy"),
}


def metrics_dir() -> Path:
    """The folder holding the ``evaluate`` modules (``$XARES_HF_METRICS_DIR`` overrides)."""
    candidates = [os.environ.get("XARES_HF_METRICS_DIR"), Path(__file__).resolve().parents[1] / "metrics"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise FileNotFoundError("cannot find the xares-hf metric modules folder; set XARES_HF_METRICS_DIR")


def metric_path(module: str) -> str:
    """Local path of one metric module folder, loadable with ``evaluate.load(path)`` offline."""
    path = metrics_dir() / module
    if not (path / f"{module}.py").is_file():
        raise FileNotFoundError(f"metric module '{module}' not found in {metrics_dir()}")
    return str(path)


def metric_spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; known: {', '.join(METRICS)}")
    return METRICS[name]


@lru_cache(maxsize=None)
def _module(name: str):
    import evaluate

    return evaluate.load(metric_path(name))


def compute(metric: str, predictions: Any, references: Any, **kwargs: Any) -> float:
    """The task metric's raw value, computed by its ``evaluate`` module."""
    spec = metric_spec(metric)
    result = _module(spec.module).compute(predictions=predictions, references=references, **kwargs)
    value = float(result[spec.key])
    if not np.isfinite(value):
        raise ValueError(f"metric '{metric}' returned a non-finite value {value}")
    return value


def normalise(metric: str, value: float) -> float:
    """Map a metric value onto 0-1 between its worst and best values, clipped."""
    spec = metric_spec(metric)
    return float(np.clip((value - spec.worst) / (spec.best - spec.worst), 0.0, 1.0))


def weighted_average(scores: list[tuple[float, float]]) -> float | None:
    """X-ARES' benchmark score: sum(score * weight) / sum(weight); None when no weight."""
    total = sum(w for _, w in scores)
    return None if total <= 0 else sum(s * w for s, w in scores) / total

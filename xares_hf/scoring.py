"""Scores through the project's published ``evaluate`` modules (``metrics/<name>``), one implementation each."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import profiling
from .metric_modules import metric_path


@dataclass(frozen=True)
class MetricSpec:
    """A card's metric: the module that computes it and its result key, its worst and best values for
    normalisation, its name on the Hub, and whether it reads class scores rather than predicted classes."""

    module: str
    key: str
    display_name: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    config: str | None = None
    worst: float = 0.0
    best: float = 1.0
    reads_scores: bool = False
    probes: tuple[str, ...] = ("mlp",)  # which probes report it: "mlp" (the task's probe), "knn"


# the metric registry: adding a metric is one entry here (tests/test_task_type_registry.py walks it)
METRICS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec(module="accuracy", key="accuracy", display_name="accuracy", probes=("mlp", "knn")),
    "mAP": MetricSpec(module="mean_average_precision", key="mean_average_precision", display_name="mAP", reads_scores=True),
    "segmentf1_macro": MetricSpec(module="segment_f1", key="segment_f1", display_name="segment F1 (macro)",
                                  kwargs=(("average", "macro"),)),
    "segmentf1_micro": MetricSpec(module="segment_f1", key="segment_f1", display_name="segment F1 (micro)",
                                  kwargs=(("average", "micro"),)),
    "recallatk_r1": MetricSpec(module="recall_at_k", key="R@1", display_name="R@1", kwargs=(("k", [1]),)),
    "WER_inv": MetricSpec(module="iwer", key="iwer", display_name="inverse WER"),
}


def source_files() -> list[Path]:
    """The code behind the scores: this module and the evaluate module of every registered metric and of
    ``xares_score``, as they are loaded (``$XARES_HF_METRICS_DIR`` included)."""
    names = sorted({spec.module for spec in METRICS.values()} | {"xares_score"})
    return [Path(__file__), *(Path(metric_path(name)) / f"{name}.py" for name in names)]


def metric_spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; known: {', '.join(METRICS)}")
    return METRICS[name]


@lru_cache(maxsize=None)
def _module(name: str, config: str | None = None):
    import evaluate

    return evaluate.load(metric_path(name), config)


def compute(metric: str, predictions: Any, references: Any, *, selection: bool = False, **kwargs: Any) -> float:
    """The task metric's raw value, computed by its ``evaluate`` module.

    ``selection=True`` (checkpoint selection, once per epoch) calls the module's own ``_compute`` on the
    arrays directly: the same implementation without evaluate's Arrow round trip, which costs up to 70x
    more on frame-level inputs. Reported scores always go through ``compute``, with its input checks.
    """
    spec = metric_spec(metric)
    module = _module(spec.module, spec.config)
    with profiling.phase("scoring"):
        if selection:
            result = module._compute(predictions=predictions, references=references, **dict(spec.kwargs), **kwargs)
        else:
            result = module.compute(predictions=predictions, references=references, **dict(spec.kwargs), **kwargs)
    value = float(result[spec.key])
    if not np.isfinite(value):
        raise ValueError(f"metric '{metric}' returned a non-finite value {value}")
    return value


def aggregate(values: list[float], weights: list[float], metrics: list[str]) -> tuple[list[float], float | None]:
    """Normalised 0-1 scores and their weighted average, by the ``xares_score`` module (None if no weight)."""
    if not values:
        return [], None
    specs = [metric_spec(m) for m in metrics]
    module = _module("xares_score")
    kw = dict(worst=[s.worst for s in specs], best=[s.best for s in specs])
    if sum(weights) <= 0:
        return module.compute(scores=values, weights=[1.0] * len(values), **kw)["normalised_scores"], None
    result = module.compute(scores=values, weights=weights, **kw)
    return result["normalised_scores"], result["score"]


def xares_score_compute(**kwargs: Any) -> dict:
    """The ``xares_score`` module's compute (scores, weights, optional worst/best)."""
    return _module("xares_score").compute(**kwargs)


def normalise(metric: str, value: float) -> float:
    """One metric value mapped onto 0-1 between its worst and best values."""
    return aggregate([value], [1.0], [metric])[0][0]

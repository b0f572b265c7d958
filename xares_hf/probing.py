"""Train and score the probes of one task on its embeddings: every round (test split or held-out fold), for
each seed, and for ``layer="all"`` each layer; the outcome is summarised as :class:`TaskResult` fields.

- Seeds: the probes are trained once per seed on the same embeddings; scores are the mean over seeds, with
  the sample standard deviation (``ddof=1``) and every seed's values kept.
- ``layer="all"``: every layer is probed; the task's score is the layer with the best mean validation score
  (never the test score), and the whole profile is kept.
- ``layer="weighted"``: one probe on a learnt softmax-weighted sum of all layers; the weights are kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np

from . import profiling, scoring
from .run_config import RunConfig
from .task_types import KNN_METRIC
from .evaluators import Context, Round, RoundOutcome, SplitData, evaluator_for
from .tasks import TaskCard



def round_splits(card: TaskCard, splits: list[str]) -> list[tuple[str, list[str], str, str]]:
    """(round name, train splits, valid split, test split) of each evaluation round: train/valid/test once,
    or each fold held out (trained on the others, and also its own validation set, as in X-ARES)."""
    if not card.is_k_fold:
        return [("test", ["train"], "valid", "test")]
    return [(held_out, [f for f in splits if f != held_out], held_out, held_out) for held_out in splits]


def rounds(card: TaskCard, data: dict[str, SplitData]) -> Iterator[Round]:
    """The evaluation rounds of :func:`round_splits` with their data."""
    for name, train, valid, test in round_splits(card, list(data)):
        joined = data[train[0]] if len(train) == 1 else SplitData.join([data[s] for s in train])
        yield Round(name, joined, data[valid], data[test])


def _one_run(ctx: Context, data: dict[str, SplitData]) -> dict[str, Any]:
    """Every round of the task with one seed: fold-averaged mlp, knn and validation score, folds and details."""
    evaluate_round = evaluator_for(ctx.card.task_type)
    outcomes: dict[str, RoundOutcome] = {}
    eval_size = 0
    for round_ in rounds(ctx.card, data):
        with profiling.phase("probe training"):
            outcomes[round_.name] = evaluate_round(ctx, round_)
        eval_size += len(round_.test)
    first = next(iter(outcomes.values()))
    weights = [o.layer_weights for o in outcomes.values()]
    knn = [o.knn for o in outcomes.values() if o.knn is not None]
    return {
        "mlp": float(np.mean([o.mlp for o in outcomes.values()])),
        "knn": float(np.mean(knn)) if knn else None,
        "valid": float(np.nanmean([o.valid for o in outcomes.values()])),
        "eval_size": eval_size,
        "folds": {name: o.scores() for name, o in outcomes.items()},
        "details": dict(first.details),
        "layer_weights": np.mean(weights, axis=0).tolist() if weights[0] is not None else None,
    }


def _over_seeds(ctx: Context, data: dict[str, SplitData], seeds: list[int]) -> dict[str, Any]:
    """``_one_run`` for each seed, summarised: means, standard deviations, and each seed's values."""
    runs = [_one_run(dataclasses.replace(ctx, seed=s), data) for s in seeds]
    mlp = [r["mlp"] for r in runs]
    knn = [r["knn"] for r in runs]
    has_knn = knn[0] is not None
    return {
        **runs[0],
        "mlp": float(np.mean(mlp)),
        "knn": float(np.mean(knn)) if has_knn else None,
        "valid": float(np.mean([r["valid"] for r in runs])),
        "mlp_std": float(np.std(mlp, ddof=1)) if len(runs) > 1 else None,
        "knn_std": float(np.std(knn, ddof=1)) if has_knn and len(runs) > 1 else None,
        "seed_runs": [{"seed": s, "mlp": r["mlp"], "mlp_score": scoring.normalise(ctx.card.metric, r["mlp"]), "knn": r["knn"],
                       "knn_score": None if r["knn"] is None else scoring.normalise(KNN_METRIC, r["knn"])}
                      for s, r in zip(seeds, runs)] if len(runs) > 1 else [],
        "layer_weights": np.mean([r["layer_weights"] for r in runs], axis=0).tolist() if runs[0]["layer_weights"] else None,
    }


def probe_task(
    card: TaskCard,
    data: dict[str, SplitData],
    hop_size_in_ms: float,
    config: RunConfig,
    stacked_layers: int = 1,
) -> dict[str, Any]:
    """The scores of one task as :class:`~xares_hf.results.TaskResult` fields (mlp, knn, their normalised scores,
    standard deviations, seed runs, folds, details, eval size, and the layer choice, profile or weights), with the
    run's seeds, k-NN choice, device, layer mode and protocol."""
    layer_mode, seeds = config.layer_mode, config.seed_list
    if layer_mode is not None and stacked_layers < 2:
        raise ValueError(f"layer='{layer_mode}' needs the embeddings of every layer (a transformers encoder with layer='all')")
    ctx = Context(card=card, hop_size_in_ms=hop_size_in_ms, seed=seeds[0], knn=config.knn, device=config.device,
                  protocol=config.protocol)
    profile: dict[str, dict[str, float]] = {}
    chosen: int | str | None = None
    if layer_mode == "all":
        per_layer = {}
        for index in range(stacked_layers):
            per_layer[index] = _over_seeds(ctx, {s: d.layer(index, stacked_layers) for s, d in data.items()}, seeds)
            summary = per_layer[index]
            profile[str(index)] = {"mlp": summary["mlp"], "mlp_score": scoring.normalise(card.metric, summary["mlp"]),
                                   "valid": summary["valid"]}
        chosen = max(per_layer, key=lambda i: (per_layer[i]["valid"], -i))  # ties: the earlier layer
        summary = per_layer[chosen]
    elif layer_mode == "weighted":
        summary = _over_seeds(dataclasses.replace(ctx, layers=stacked_layers), data, seeds)
        chosen = "weighted"
    else:
        summary = _over_seeds(ctx, data, seeds)
    return {
        "mlp": summary["mlp"],
        "mlp_score": scoring.normalise(card.metric, summary["mlp"]),
        "knn": summary["knn"],
        "knn_score": None if summary["knn"] is None else scoring.normalise(KNN_METRIC, summary["knn"]),
        "mlp_std": summary["mlp_std"],
        "knn_std": summary["knn_std"],
        "seed_runs": summary["seed_runs"],
        "eval_size": summary["eval_size"],
        "folds": summary["folds"],
        "details": summary["details"],
        "layer": chosen,
        "layer_profile": profile,
        "layer_weights": summary["layer_weights"],
    }

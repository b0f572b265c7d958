"""Clip tasks: the linear probe on pooled embeddings (single- or multi-label) and, for single-label, k-NN."""

from __future__ import annotations

import numpy as np

from .. import profiling, scoring
from ..probes import knn_predict, train_linear_probe
from ..probes.knn import per_dimension_knn_predict
from ..probes.layer_mix import mix_with
from ..task_types import KNN_METRIC
from .base import Context, Round, RoundOutcome


def _score(metric: str, selection: bool = False):
    def score(logits: np.ndarray, labels: np.ndarray) -> float:
        if scoring.metric_spec(metric).reads_scores:  # mAP: the class scores themselves
            return scoring.compute(metric, predictions=logits, references=labels.astype(np.int64), selection=selection)
        return scoring.compute(metric, predictions=logits.argmax(axis=1), references=labels, selection=selection)

    return score


def evaluate_round(ctx: Context, data: Round) -> RoundOutcome:
    card = ctx.card
    multi_label = card.labels.kind == "multi_label"
    probe = train_linear_probe(
        (data.train.pooled, data.train.labels),
        (data.valid.pooled, data.valid.labels),
        data.test.pooled,
        num_classes=card.labels.num_classes,
        score=_score(card.metric, selection=True),
        epochs=card.probe.epochs,
        learning_rate=card.probe.learning_rate,
        batch_size=card.probe.batch_size,
        multi_label=multi_label,
        seed=ctx.seed,
        desc=f"probe {card.name}/{data.name}",
        layers=ctx.layers,
        device=ctx.device,
    )
    outcome = RoundOutcome(mlp=_score(card.metric)(probe.test_predictions, data.test.labels), valid=max(probe.valid_scores),
                           best_epoch=probe.best_epoch, valid_history=probe.valid_scores, layer_weights=probe.layer_weights)
    if ctx.knn and card.knn:
        with profiling.phase("kNN"):
            train, test = data.train.pooled.numpy(), data.test.pooled.numpy()  # k-NN compares every pair: rows in memory
            if probe.layer_weights:  # k-NN on the layers mixed as the probe learnt to
                train, test = mix_with(train, probe.layer_weights), mix_with(test, probe.layer_weights)
            if ctx.protocol.knn == "per-dimension":
                predictions = per_dimension_knn_predict(train, data.train.labels, test, card.labels.num_classes)
            else:
                predictions = knn_predict(train, data.train.labels, test)
        outcome.knn = scoring.compute(KNN_METRIC, predictions=predictions, references=data.test.labels)
    return outcome

"""Frame tasks (sound events, notes): a per-frame probe on frame targets built at the encoder's hop, segment F1."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import scoring
from ..probes.frame import train_frame_probe
from ..tasks import frame_targets
from .base import Context, Round, SplitData


def _targets(ctx: Context, split: SplitData) -> list[np.ndarray]:
    classes = ctx.card.labels.num_classes
    return [frame_targets(events, ctx.hop_size_in_ms, f.shape[0], classes) for events, f in zip(split.labels, split.frames)]


def evaluate_round(ctx: Context, data: Round) -> dict[str, Any]:
    card = ctx.card

    def score(probabilities: list[np.ndarray], targets: list[np.ndarray], selection: bool = True) -> float:
        return scoring.compute(
            card.metric,
            predictions=probabilities if selection else [p.tolist() for p in probabilities],
            references=[t.astype(np.int64) for t in targets] if selection else [t.astype(np.int64).tolist() for t in targets],
            hop_size_in_ms=ctx.hop_size_in_ms,
            segment_length_in_s=card.metric_args.segment_length_in_s,
            selection=selection,
        )

    test_targets = _targets(ctx, data.test)
    probe = train_frame_probe(
        (data.train.frames, _targets(ctx, data.train)),
        (data.valid.frames, _targets(ctx, data.valid)),
        data.test.frames,
        num_classes=card.labels.num_classes,
        score=score,
        epochs=card.probe.epochs,
        learning_rate=card.probe.learning_rate,
        batch_size=card.probe.batch_size,
        pos_weight=card.probe.pos_weight,
        seed=ctx.seed,
        desc=f"frame probe {card.name}/{data.name}",
        layers=ctx.layers,
    )
    return {"mlp": score(probe.test_predictions, test_targets, selection=False), "best_epoch": probe.best_epoch,
            "valid": max(probe.valid_scores), "layer_weights": probe.layer_weights}

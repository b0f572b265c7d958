"""Frame tasks (sound events, notes): a per-frame probe on frame targets built at the encoder's hop, segment F1."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import scoring
from ..probes.frame import pad_targets, train_frame_probe
from ..tasks import frame_targets
from .base import Context, Round, RoundOutcome, SplitData


class _Targets(Sequence):
    """Each clip's 0/1 frame targets at the encoder's hop, made when asked for (a batch at a time in training)."""

    def __init__(self, ctx: Context, split: SplitData) -> None:
        self.events, self.lengths = split.labels, split.frames.lengths
        self.hop, self.classes = ctx.hop_size_in_ms, ctx.card.labels.num_classes

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(len(self))[row]]
        return frame_targets(self.events[row], self.hop, int(self.lengths[row]), self.classes)


def _targets(ctx: Context, split: SplitData) -> list[np.ndarray]:
    return list(_Targets(ctx, split))


def evaluate_round(ctx: Context, data: Round) -> RoundOutcome:
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
        (data.train.frames, _Targets(ctx, data.train)),
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
        device=ctx.device,
        padded_batches=ctx.protocol.padded_batches,
    )
    if ctx.protocol.padded_batches:  # xares 0.1.3 scores its evaluation batches with their padding
        test_targets = pad_targets(test_targets, probe.test_predictions)
    return RoundOutcome(mlp=score(probe.test_predictions, test_targets, selection=False), valid=max(probe.valid_scores),
                        best_epoch=probe.best_epoch, valid_history=probe.valid_scores, layer_weights=probe.layer_weights)

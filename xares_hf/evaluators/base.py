"""What every task-type evaluator receives: one evaluation round's train, valid and test data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..protocols import Protocol, get_protocol
from ..store import Frames, Rows
from ..tasks import TaskCard


@dataclass
class SplitData:
    """Embeddings of one split (or fold, or several folds joined) with their decoded labels; the embeddings are
    views of the store, read a batch at a time by the probes."""

    pooled: Rows
    labels: Any  # int64 indices, a many-hot matrix, or a list (events, captions, transcripts)
    frames: Frames | None = None

    def __len__(self) -> int:
        return len(self.pooled)

    @staticmethod
    def join(parts: list["SplitData"]) -> "SplitData":
        labels: Any
        if isinstance(parts[0].labels, np.ndarray):
            labels = np.concatenate([p.labels for p in parts])
        else:
            labels = [label for p in parts for label in p.labels]
        frames = None if parts[0].frames is None else Frames.concat([p.frames for p in parts])
        return SplitData(Rows.concat([p.pooled for p in parts]), labels, frames)

    def layer(self, index: int, layers: int) -> "SplitData":
        """The embeddings of one of ``layers`` layers stored side by side (``layer="all"``)."""
        dim = self.pooled.dim // layers
        part = slice(index * dim, (index + 1) * dim)
        frames = None if self.frames is None else self.frames.cols(part)
        return SplitData(self.pooled.cols(part), self.labels, frames)


@dataclass
class Round:
    """One evaluation round: the test split, or one held-out fold."""

    name: str
    train: SplitData
    valid: SplitData
    test: SplitData


@dataclass
class Context:
    """Facts about the run that evaluators need besides the data."""

    card: TaskCard
    hop_size_in_ms: float
    seed: int = 42
    knn: bool = True
    device: str = "cpu"
    layers: int = 1  # >1: embeddings hold that many layers side by side, mixed by learnt weights (layer="weighted")
    protocol: Protocol = field(default_factory=lambda: get_protocol(None))


@dataclass
class RoundOutcome:
    """What one evaluation round gives: the probe's test score and its selection, k-NN's score, what was used."""

    mlp: float
    valid: float  # the best validation score (the chosen epoch's)
    best_epoch: int
    valid_history: list[float]
    knn: float | None = None
    details: dict[str, str | None] = field(default_factory=dict)  # e.g. the ASR head and decoder, the tokenizer
    layer_weights: list[float] | None = None  # learnt weights over stacked layers (``layer="weighted"``)

    def scores(self) -> dict[str, Any]:
        """The round's entry in a task result's ``folds``."""
        out: dict[str, Any] = {"mlp": self.mlp, "valid": self.valid, "best_epoch": self.best_epoch}
        if self.knn is not None:
            out["knn"] = self.knn
        return out

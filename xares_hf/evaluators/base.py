"""What every task-type evaluator receives: one evaluation round's train, valid and test data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..tasks import TaskCard


@dataclass
class SplitData:
    """Embeddings of one split (or fold, or several folds joined) with their decoded labels."""

    pooled: np.ndarray
    labels: Any  # int64 indices, a many-hot matrix, or a list (events, captions, transcripts)
    frames: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.pooled)

    @staticmethod
    def join(parts: list["SplitData"]) -> "SplitData":
        labels: Any
        if isinstance(parts[0].labels, np.ndarray):
            labels = np.concatenate([p.labels for p in parts])
        else:
            labels = [label for p in parts for label in p.labels]
        frames = None if parts[0].frames is None else [f for p in parts for f in p.frames]
        return SplitData(np.concatenate([p.pooled for p in parts]), labels, frames)

    def layer(self, index: int, layers: int) -> "SplitData":
        """The embeddings of one of ``layers`` layers stored side by side (``layer="all"``)."""
        dim = self.pooled.shape[1] // layers
        part = slice(index * dim, (index + 1) * dim)
        frames = None if self.frames is None else [f[:, part] for f in self.frames]
        return SplitData(self.pooled[:, part], self.labels, frames)


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

"""The X-ARES linear probe: LayerNorm + Linear on pooled embeddings, Adam, cosine LR, best epoch on valid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import distributed
from ..store import Rows
from .layer_mix import layer_weights, with_layer_mix
from .trainer import Fit, fit, in_batches


@dataclass
class ProbeResult:
    """The trained probe's test predictions and its selection history."""

    test_predictions: np.ndarray | list[np.ndarray]
    best_epoch: int
    valid_scores: list[float]
    layer_weights: list[float] | None = None  # learnt weights over stacked layers (``layers > 1``)
    fit: Fit | None = None


def linear_head(dim: int, num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.LayerNorm(dim), torch.nn.Linear(dim, num_classes))


def as_rows(x: Rows | np.ndarray) -> Rows:
    """Stored rows as they are; an array in memory wrapped as rows."""
    return x if isinstance(x, Rows) else Rows.from_array(np.asarray(x, dtype=np.float32))


class LinearHead:
    """A linear head on pooled rows: summed cross-entropy (or BCE over classes) per global batch, mean taken."""

    def __init__(self, x: Rows, y: np.ndarray, valid: tuple[Rows, np.ndarray], num_classes: int, multi_label: bool,
                 score: Callable[[np.ndarray, np.ndarray], float], batch_size: int, layers: int, device: torch.device):
        self.x, self.valid, self.score, self.batch_size, self.device = x, valid, score, batch_size, device
        self.y = torch.as_tensor(y, dtype=torch.float32 if multi_label else torch.long)
        self.module = with_layer_mix(linear_head(x.dim // layers, num_classes), layers).to(device)
        self.loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum") if multi_label else torch.nn.CrossEntropyLoss(reduction="sum")
        self.per_sample = num_classes if multi_label else 1  # BCE sums over classes too; its mean divides by them

    def batch_loss(self, mine: list[int], batch: list[int]) -> torch.Tensor:
        x = torch.from_numpy(self.x.take(mine)).to(self.device)
        return self.loss_fn(self.module(x), self.y[mine].to(self.device)) / (len(batch) * self.per_sample)

    def predict(self, rows: Rows) -> np.ndarray:
        """Logits of every row, a batch at a time."""
        self.module.eval()
        with torch.inference_mode():
            if not len(rows):
                return self.module(torch.zeros(0, rows.dim, device=self.device)).cpu().numpy()
            return torch.cat([self.module(torch.from_numpy(rows.take(b)).to(self.device)).cpu()
                              for b in in_batches(len(rows), self.batch_size)]).numpy()

    def predict_all(self, rows: Rows) -> np.ndarray:
        return distributed.predict_all(self.predict, rows)

    def validation_score(self) -> float:
        return self.score(self.predict_all(self.valid[0]), self.valid[1])


def train_linear_probe(
    train: tuple[Rows | np.ndarray, np.ndarray],
    valid: tuple[Rows | np.ndarray, np.ndarray],
    test_x: Rows | np.ndarray,
    num_classes: int,
    score: Callable[[np.ndarray, np.ndarray], float],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    multi_label: bool = False,
    seed: int = 42,
    desc: str = "probe",
    layers: int = 1,
    device: str | torch.device = "cpu",
) -> ProbeResult:
    """Train on ``train``, keep the epoch scoring best on ``valid`` (``score(logits, labels)``), predict ``test_x``.

    Logits are returned: callers turn them into classes or probabilities. Deterministic for a seed.
    ``layers > 1``: the inputs are that many layers side by side, mixed by learnt softmax weights first.
    Rows are read a batch at a time (stored embeddings are never held whole); see :mod:`.trainer` for the rest.
    """
    x = as_rows(train[0])
    valid_rows = (as_rows(valid[0]), valid[1])
    build = lambda: LinearHead(x, train[1], valid_rows, num_classes, multi_label, score, batch_size, layers,  # noqa: E731
                               torch.device(device))
    head, outcome = fit(build, len(x), epochs, learning_rate, batch_size, seed, desc)
    return ProbeResult(head.predict_all(as_rows(test_x)), outcome.best_epoch, outcome.valid_scores,
                       layer_weights(head.module), outcome)

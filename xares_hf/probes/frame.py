"""The X-ARES frame probe: LayerNorm + Linear on every encoder frame, BCE, best epoch on valid."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .. import distributed
from ..store import Frames
from .layer_mix import layer_weights, with_layer_mix
from .linear import ProbeResult, linear_head
from .trainer import fit, in_batches


def as_frames(frames: Frames | Sequence[np.ndarray]) -> Frames:
    """Stored frames as they are; per-clip arrays in memory wrapped as frames."""
    return frames if isinstance(frames, Frames) else Frames.from_list([np.asarray(f, np.float32) for f in frames])


def _pad(frames: list[np.ndarray], targets: list[np.ndarray] | None = None):
    x = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(f) for f in frames], batch_first=True)
    mask = torch.zeros(x.shape[:2], dtype=torch.bool)
    for i, f in enumerate(frames):
        mask[i, : f.shape[0]] = True
    y = None if targets is None else torch.nn.utils.rnn.pad_sequence([torch.from_numpy(t) for t in targets], batch_first=True)
    return x, mask, y


def pad_targets(targets: Sequence[np.ndarray], predictions: list[np.ndarray]) -> list[np.ndarray]:
    """Each clip's targets zero-padded to its prediction's length (predictions of padded batches, xares 0.1.3)."""
    return [np.pad(t, ((0, len(p) - len(t)), (0, 0))) if len(p) > len(t) else t for t, p in zip(targets, predictions)]


class FrameHead:
    """A per-frame head: BCE on every real frame (padding masked), averaged over the global batch's frames.

    ``padded`` (protocol xares-0.1.3, xares/trainer.py l. 61-67): the padding frames count in the loss, with
    target 0, and predictions keep the padding of their batch, as xares 0.1.3 trains and scores."""

    def __init__(self, frames: Frames, targets: Sequence[np.ndarray], valid: tuple[Frames, Sequence[np.ndarray]],
                 num_classes: int, score: Callable, batch_size: int, pos_weight: float | None, layers: int,
                 device: torch.device, padded: bool = False) -> None:
        self.frames, self.targets, self.valid, self.score, self.padded = frames, targets, valid, score, padded
        self.batch_size, self.device, self.lengths = batch_size, device, frames.lengths
        self.module = with_layer_mix(linear_head(frames.dim // layers, num_classes), layers).to(device)
        weight = None if pos_weight is None else torch.full((num_classes,), float(pos_weight), device=device)
        self.loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight, reduction="none")

    def batch_loss(self, mine: list[int], batch: list[int]) -> torch.Tensor:
        total_frames = int(self.lengths[batch].sum())  # of the global batch, as one process sees it
        x, mask, y = _pad(self.frames.take(mine), [self.targets[i] for i in mine])
        x, mask, y = x.to(self.device), mask.to(self.device), y.to(self.device)
        if self.padded:  # every frame of the padded batch, its padding too
            return self.loss_fn(self.module(x), y).mean(-1).sum() / (len(batch) * int(self.lengths[batch].max()))
        return (self.loss_fn(self.module(x), y).mean(-1) * mask).sum() / total_frames

    def predict(self, frames: Frames) -> list[np.ndarray]:
        """Per-frame probabilities of every clip, a batch at a time."""
        self.module.eval()
        out = []
        with torch.inference_mode():
            for rows in in_batches(len(frames), self.batch_size):
                chunk = frames.take(rows)
                x, _, _ = _pad(chunk)
                probs = torch.sigmoid(self.module(x.to(self.device))).cpu().numpy()
                out.extend(probs[i, : probs.shape[1] if self.padded else f.shape[0]] for i, f in enumerate(chunk))
        return out

    def predict_all(self, frames: Frames) -> list[np.ndarray]:
        return distributed.predict_all(self.predict, frames)

    def validation_score(self) -> float:
        predictions = self.predict_all(self.valid[0])
        return self.score(predictions, pad_targets(self.valid[1], predictions) if self.padded else self.valid[1])


def train_frame_probe(
    train: tuple[Frames | Sequence[np.ndarray], Sequence[np.ndarray]],
    valid: tuple[Frames | Sequence[np.ndarray], Sequence[np.ndarray]],
    test_frames: Frames | Sequence[np.ndarray],
    num_classes: int,
    score: Callable[[list[np.ndarray], Sequence[np.ndarray]], float],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    pos_weight: float | None = None,
    seed: int = 42,
    desc: str = "frame probe",
    layers: int = 1,
    device: str | torch.device = "cpu",
    padded_batches: bool = False,
) -> ProbeResult:
    """Train a per-frame head on (frames, 0/1 targets) clips; test predictions are per-frame probabilities.

    Padded frames are masked out of the loss. ``score(probabilities, targets)`` picks the best epoch.
    ``layers > 1``: frames hold that many layers side by side, mixed by learnt softmax weights first.
    Frames and targets are read a batch at a time (``targets`` may compute each clip's on access).
    ``padded_batches``: xares 0.1.3's loss and predictions over the padded batch (see :class:`FrameHead`); score
    test predictions against :func:`pad_targets`.
    """
    frames = as_frames(train[0])
    valid_frames = (as_frames(valid[0]), valid[1])
    build = lambda: FrameHead(frames, train[1], valid_frames, num_classes, score, batch_size, pos_weight, layers,  # noqa: E731
                              torch.device(device), padded_batches)
    head, outcome = fit(build, len(frames), epochs, learning_rate, batch_size, seed, desc)
    return ProbeResult(head.predict_all(as_frames(test_frames)), outcome.best_epoch, outcome.valid_scores,
                       layer_weights(head.module), outcome)

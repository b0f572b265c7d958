"""The X-ARES frame probe: LayerNorm + Linear on every encoder frame, BCE, best epoch on valid."""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .linear import ProbeResult, linear_head


def _pad(frames: list[np.ndarray], targets: list[np.ndarray] | None = None):
    x = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(f) for f in frames], batch_first=True)
    mask = torch.zeros(x.shape[:2], dtype=torch.bool)
    for i, f in enumerate(frames):
        mask[i, : f.shape[0]] = True
    y = None if targets is None else torch.nn.utils.rnn.pad_sequence([torch.from_numpy(t) for t in targets], batch_first=True)
    return x, mask, y


def _predict(head: torch.nn.Module, frames: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    head.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            chunk = frames[start : start + batch_size]
            x, _, _ = _pad(chunk)
            probs = torch.sigmoid(head(x)).numpy()
            out.extend(probs[i, : f.shape[0]] for i, f in enumerate(chunk))
    return out


def train_frame_probe(
    train: tuple[list[np.ndarray], list[np.ndarray]],
    valid: tuple[list[np.ndarray], list[np.ndarray]],
    test_frames: list[np.ndarray],
    num_classes: int,
    score: Callable[[list[np.ndarray], list[np.ndarray]], float],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    pos_weight: float | None = None,
    seed: int = 42,
    desc: str = "frame probe",
) -> ProbeResult:
    """Train a per-frame head on (frames, 0/1 targets) clips; test predictions are per-frame probabilities.

    Padded frames are masked out of the loss. ``score(probabilities, targets)`` picks the best epoch.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    frames, targets = train
    head = linear_head(frames[0].shape[1], num_classes)
    optimiser = torch.optim.Adam(head.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs, eta_min=0.1 * learning_rate)
    weight = None if pos_weight is None else torch.full((num_classes,), float(pos_weight))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight, reduction="none")
    best, best_epoch, best_state, history = -np.inf, 0, copy.deepcopy(head.state_dict()), []
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False):
        head.train()
        order = torch.randperm(len(frames), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x, mask, y = _pad([frames[i] for i in idx], [targets[i] for i in idx])
            optimiser.zero_grad()
            loss = (loss_fn(head(x), y).mean(-1) * mask).sum() / mask.sum()
            loss.backward()
            optimiser.step()
        if epochs > 1:
            schedule.step()
        value = score(_predict(head, valid[0], batch_size), valid[1])
        history.append(value)
        if value > best:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    return ProbeResult(_predict(head, test_frames, batch_size), best_epoch, history)

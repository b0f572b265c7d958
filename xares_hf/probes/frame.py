"""The X-ARES frame probe: LayerNorm + Linear on every encoder frame, BCE, best epoch on valid."""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed
from .layer_mix import layer_weights, with_layer_mix
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
    layers: int = 1,
) -> ProbeResult:
    """Train a per-frame head on (frames, 0/1 targets) clips; test predictions are per-frame probabilities.

    Padded frames are masked out of the loss. ``score(probabilities, targets)`` picks the best epoch.
    ``layers > 1``: frames hold that many layers side by side, mixed by learnt softmax weights first.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    frames, targets = train
    head = with_layer_mix(linear_head(frames[0].shape[1] // layers, num_classes), layers)
    optimiser = torch.optim.Adam(head.parameters(), lr=learning_rate)
    head, optimiser = distributed.prepare(head, optimiser)
    model = distributed.unwrap(head)
    world, rank = distributed.world_size(), distributed.rank()
    predict = lambda clips: _predict(model, clips, batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs, eta_min=0.1 * learning_rate)
    weight = None if pos_weight is None else torch.full((num_classes,), float(pos_weight))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight, reduction="none")
    best, best_epoch, best_state, history = -np.inf, 0, copy.deepcopy(model.state_dict()), []
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False, disable=not distributed.is_main()):
        head.train()
        order = torch.randperm(len(frames), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            total_frames = sum(frames[i].shape[0] for i in idx)  # of the global batch, as one process sees it
            mine = idx[rank::world]
            optimiser.zero_grad()
            if mine:
                x, mask, y = _pad([frames[i] for i in mine], [targets[i] for i in mine])
                loss = (loss_fn(head(x), y).mean(-1) * mask).sum() * world / total_frames
            else:  # a batch smaller than the number of processes: this one adds nothing but must join in
                loss = sum(p.sum() for p in head.parameters()) * 0.0
            distributed.backward(loss)
            optimiser.step()
        if epochs > 1:
            schedule.step()
        value = score(distributed.predict_all(predict, valid[0]), valid[1])
        history.append(value)
        if value > best:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return ProbeResult(distributed.predict_all(predict, test_frames), best_epoch, history, layer_weights(model))

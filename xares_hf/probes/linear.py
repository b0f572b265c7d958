"""The X-ARES linear probe: LayerNorm + Linear on pooled embeddings, Adam, cosine LR, best epoch on valid."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass
class ProbeResult:
    """The trained probe's test predictions and its selection history."""

    test_predictions: np.ndarray | list[np.ndarray]
    best_epoch: int
    valid_scores: list[float]


def linear_head(dim: int, num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.LayerNorm(dim), torch.nn.Linear(dim, num_classes))


def _predict(head: torch.nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    head.eval()
    with torch.inference_mode():
        logits = torch.cat([head(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else x
    return logits.numpy()


def train_linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    test_x: np.ndarray,
    num_classes: int,
    score: Callable[[np.ndarray, np.ndarray], float],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    multi_label: bool = False,
    seed: int = 42,
    desc: str = "probe",
) -> ProbeResult:
    """Train on ``train``, keep the epoch scoring best on ``valid`` (``score(logits, labels)``), predict ``test_x``.

    Logits are returned: callers turn them into classes or probabilities. Deterministic for a seed.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train = torch.as_tensor(train[0], dtype=torch.float32)
    y_train = torch.as_tensor(train[1], dtype=torch.float32 if multi_label else torch.long)
    x_valid = torch.as_tensor(valid[0], dtype=torch.float32)
    head = linear_head(x_train.shape[1], num_classes)
    optimiser = torch.optim.Adam(head.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs, eta_min=0.1 * learning_rate)
    loss_fn = torch.nn.BCEWithLogitsLoss() if multi_label else torch.nn.CrossEntropyLoss()
    best, best_epoch, best_state, history = -np.inf, 0, copy.deepcopy(head.state_dict()), []
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False):
        head.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(head(x_train[idx]), y_train[idx])
            loss.backward()
            optimiser.step()
        if epochs > 1:
            schedule.step()
        value = score(_predict(head, x_valid, batch_size), valid[1])
        history.append(value)
        if value > best:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    return ProbeResult(_predict(head, torch.as_tensor(test_x, dtype=torch.float32), batch_size), best_epoch, history)

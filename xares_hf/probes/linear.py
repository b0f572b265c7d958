"""The X-ARES linear probe: LayerNorm + Linear on pooled embeddings, Adam, cosine LR, best epoch on valid."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed
from .layer_mix import layer_weights, with_layer_mix


@dataclass
class ProbeResult:
    """The trained probe's test predictions and its selection history."""

    test_predictions: np.ndarray | list[np.ndarray]
    best_epoch: int
    valid_scores: list[float]
    layer_weights: list[float] | None = None  # learnt weights over stacked layers (``layers > 1``)


def linear_head(dim: int, num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.LayerNorm(dim), torch.nn.Linear(dim, num_classes))


def _predict(head: torch.nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    head.eval()
    with torch.inference_mode():
        logits = torch.cat([head(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else head(x)
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
    layers: int = 1,
) -> ProbeResult:
    """Train on ``train``, keep the epoch scoring best on ``valid`` (``score(logits, labels)``), predict ``test_x``.

    Logits are returned: callers turn them into classes or probabilities. Deterministic for a seed.
    ``layers > 1``: the inputs are that many layers side by side, mixed by learnt softmax weights first.
    Under ``accelerate launch`` every global batch is the one a single process would draw; each process
    takes its share and DDP averages the gradients, so training follows the single-process run.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train = torch.as_tensor(train[0], dtype=torch.float32)
    y_train = torch.as_tensor(train[1], dtype=torch.float32 if multi_label else torch.long)
    head = with_layer_mix(linear_head(x_train.shape[1] // layers, num_classes), layers)
    optimiser = torch.optim.Adam(head.parameters(), lr=learning_rate)
    head, optimiser = distributed.prepare(head, optimiser)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs, eta_min=0.1 * learning_rate)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum") if multi_label else torch.nn.CrossEntropyLoss(reduction="sum")
    per_sample = num_classes if multi_label else 1  # BCE sums over classes too; its mean divides by them
    world, rank = distributed.world_size(), distributed.rank()
    model = distributed.unwrap(head)
    predict = lambda x: _predict(model, torch.as_tensor(x, dtype=torch.float32), batch_size)
    best, best_epoch, best_state, history = -np.inf, 0, copy.deepcopy(model.state_dict()), []
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False, disable=not distributed.is_main()):
        head.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            mine = idx[rank::world]
            optimiser.zero_grad()
            # the global batch's mean loss: DDP averages gradients over processes, hence the factor world
            loss = loss_fn(head(x_train[mine]), y_train[mine]) * world / (len(idx) * per_sample)
            distributed.backward(loss)
            optimiser.step()
        if epochs > 1:
            schedule.step()
        value = score(distributed.predict_all(predict, valid[0]), valid[1])
        history.append(value)
        if value > best:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return ProbeResult(distributed.predict_all(predict, test_x), best_epoch, history, layer_weights(model))

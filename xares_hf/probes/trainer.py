"""The one training loop of every probe head (linear, multi-label, frame, retrieval towers, CTC and LLM ASR heads).

It owns what X-ARES' probes share: the seed (set before the head is built, so its initialisation is the seed's),
Adam, a cosine schedule down to 0.1x the learning rate stepped per epoch, scoring the validation split after
every epoch, keeping the best epoch's state (the first of equal scores; a NaN score never wins) and restoring it,
and a progress bar on the main process only.

Under ``accelerate launch`` every process draws the same global batches (the shuffle's generator is seeded
alike), computes the loss of its round-robin share of each, and the gradients are summed over processes before
the step, so an N-process run follows the single-process run up to float summation order. A head's
:meth:`Head.batch_loss` returns its share of the global batch's mean loss: summed over processes, that mean.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed
from ..heap import bound_heap_growth

logger = logging.getLogger("xares_hf")


class Head(Protocol):
    """What the trainer needs from a probe head."""

    module: torch.nn.Module  # the trained parameters (a frozen LM, if any, lives outside it)

    def batch_loss(self, mine: list[int], batch: list[int]) -> torch.Tensor | None:
        """This process's share of the mean loss of the global ``batch`` (training items), from its items ``mine``
        (None when it has none)."""

    def validation_score(self) -> float:
        """The score on the validation split now (higher is better), the same on every process."""


@dataclass
class Fit:
    """How training went: the chosen epoch, each epoch's validation score and mean training loss, and how many
    training items each process computed the loss of (all epochs)."""

    best_epoch: int
    valid_scores: list[float]
    train_losses: list[float]
    items_per_process: list[int] = field(default_factory=list)


def share_of_mean(mean: torch.Tensor, units_mine: float, units_batch: float) -> torch.Tensor:
    """A mean over this process's items turned into its share of the global batch's mean (exact when the process
    has the whole batch)."""
    return mean if units_mine == units_batch else mean * (units_mine / units_batch)


def fit(
    build: Callable[[], Head],
    items: int,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    desc: str,
    after_step: Callable[[Head], None] | None = None,
) -> tuple[Head, Fit]:
    """Build a head under ``seed``, train it on ``items`` training items for ``epochs`` and return it with its best
    epoch's state restored, and the :class:`Fit`."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    bound_heap_growth()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head = build()
    optimiser = torch.optim.Adam(head.module.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs, eta_min=0.1 * learning_rate)
    world, rank = distributed.world_size(), distributed.rank()
    trained = [p for p in head.module.parameters() if p.requires_grad]
    best, best_epoch, best_state = -np.inf, 0, copy.deepcopy(head.module.state_dict())
    history: list[float] = []
    losses: list[float] = []
    done = 0
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False, disable=not distributed.is_main()):
        head.module.train()
        order = torch.randperm(items, generator=generator).tolist()
        total, steps = 0.0, 0
        for start in range(0, items, batch_size):
            batch = order[start : start + batch_size]
            mine = batch[rank::world]
            optimiser.zero_grad()
            loss = head.batch_loss(mine, batch) if mine else None
            if loss is not None:
                loss.backward()
                total += float(loss.detach())
            if world > 1:
                _sum_gradients(trained)
            optimiser.step()
            if after_step is not None:
                after_step(head)
            steps, done = steps + 1, done + len(mine)
        losses.append(_sum(total, world) / max(steps, 1))
        if epochs > 1:
            schedule.step()
        value = float(head.validation_score())
        history.append(value)
        if not math.isnan(value) and value > best:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(head.module.state_dict())
    head.module.load_state_dict(best_state)
    logger.info("%s: process %d of %d computed the loss of %d of %d training items (%d epochs)", desc, rank, world,
                done, items * epochs, epochs)
    return head, Fit(best_epoch, history, losses, [int(n) for n in distributed.gather(done)])


def _sum_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    """Sum every process's gradients (a process without a share this step adds zeros), one collective per step."""
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = distributed.all_sum(torch.cat([p.grad.reshape(-1) for p in parameters]))
    at = 0
    for p in parameters:
        p.grad.copy_(flat[at : at + p.numel()].view_as(p))
        at += p.numel()


def _sum(value: float, world: int) -> float:
    return value if world == 1 else float(sum(distributed.gather(value)))


def in_batches(count: int, batch_size: int) -> list[np.ndarray]:
    """Consecutive index ranges of at most ``batch_size``, for prediction."""
    return [np.arange(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]

"""One evaluator per task type; each scores one evaluation round from embeddings and labels."""

from __future__ import annotations

from importlib import import_module
from typing import Callable

from .base import Context, Round, RoundOutcome, SplitData

_MODULES = {"clip": "clip", "frame": "frame", "contrastive": "retrieval", "asr": "asr"}
NEEDS_FRAMES = {"frame", "asr"}


def evaluator_for(task_type: str) -> Callable[[Context, Round], RoundOutcome]:
    """The ``evaluate_round`` of a task type (imported on use: ASR pulls in a causal LM stack)."""
    return import_module(f".{_MODULES[task_type]}", __name__).evaluate_round


__all__ = ["Context", "NEEDS_FRAMES", "Round", "RoundOutcome", "SplitData", "evaluator_for"]

"""One evaluator per task type; each scores one evaluation round from embeddings and labels."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

from .base import Context, Round, SplitData

_MODULES = {"clip": "clip", "frame": "frame", "contrastive": "retrieval", "asr": "asr"}
NEEDS_FRAMES = {"frame", "asr"}


def evaluator_for(task_type: str) -> Callable[[Context, Round], dict[str, Any]]:
    """The ``evaluate_round`` of a task type (imported on use: ASR pulls in a causal LM stack)."""
    return import_module(f".{_MODULES[task_type]}", __name__).evaluate_round


__all__ = ["Context", "NEEDS_FRAMES", "Round", "SplitData", "evaluator_for"]

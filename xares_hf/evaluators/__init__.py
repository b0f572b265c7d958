"""One evaluator per task type; each scores one evaluation round from embeddings and labels."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..task_types import task_type
from .base import Context, Round, RoundOutcome, SplitData


def evaluator_for(name: str) -> Callable[[Context, Round], RoundOutcome]:
    """The ``evaluate_round`` of a task type (:mod:`xares_hf.task_types` names its module)."""
    return task_type(name).evaluate_round()


SOURCE_FILES = sorted(Path(__file__).parent.glob("*.py"))  # what the result cache hashes

__all__ = ["SOURCE_FILES", "Context", "Round", "RoundOutcome", "SplitData", "evaluator_for"]

"""Task cards, their registry and label handling."""

from .card import TaskCard, TaskCardError
from .labels import LabelEncoder, LabelError
from .registry import load_task, load_tasks, shipped_cards

__all__ = ["TaskCard", "TaskCardError", "LabelEncoder", "LabelError", "load_task", "load_tasks", "shipped_cards"]

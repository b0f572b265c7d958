"""Task cards, their registry and label handling."""

from .card import TaskCard, TaskCardError
from .labels import Event, LabelEncoder, LabelError, frame_targets
from .registry import load_task, load_tasks, shipped_cards

__all__ = ["Event", "TaskCard", "TaskCardError", "LabelEncoder", "LabelError", "frame_targets", "load_task", "load_tasks", "shipped_cards"]

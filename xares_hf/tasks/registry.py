"""Find task cards: the ones shipped with the package, and any given by path."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .card import TaskCard, TaskCardError

CARDS_DIR = Path(__file__).parent / "cards"


def shipped_cards() -> dict[str, Path]:
    """Names of the task cards shipped with xares-hf, mapped to their files."""
    return {p.stem: p for p in sorted(CARDS_DIR.glob("*.yaml"))}


def load_task(name_or_path: str | Path | TaskCard) -> TaskCard:
    """A card by shipped name (``"esc50"``), by path to a ``.yaml`` file, or passed through."""
    if isinstance(name_or_path, TaskCard):
        return name_or_path
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return TaskCard.from_yaml(text)
    cards = shipped_cards()
    if text not in cards:
        raise TaskCardError(
            f"unknown task '{text}': not a card file and not one of the shipped tasks ({', '.join(cards)})"
        )
    return TaskCard.from_yaml(cards[text])


def load_tasks(items: Iterable[str | Path | TaskCard]) -> list[TaskCard]:
    """Cards for several names, paths or folders (a folder means every card in it)."""
    cards: list[TaskCard] = []
    for item in items:
        if not isinstance(item, TaskCard) and Path(item).is_dir():
            found = sorted(Path(item).glob("*.yaml"))
            if not found:
                raise TaskCardError(f"{item}: folder holds no task cards (*.yaml)")
            cards.extend(TaskCard.from_yaml(p) for p in found)
        else:
            cards.append(load_task(item))
    names = [c.name for c in cards]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TaskCardError(f"tasks given more than once: {', '.join(dupes)}")
    return cards

"""Locate a task's WebDataset shards for each split or fold, with errors that name what is missing."""

from __future__ import annotations

from pathlib import Path

from ..tasks.card import TaskCard


class DataError(FileNotFoundError):
    """A task's data folder or shards are missing or unreadable; the message names task, split and path."""


def task_folder(card: TaskCard, data_dir: str | Path) -> Path:
    """``<data_dir>/<task name>``, the layout of X-ARES' Zenodo archives once unpacked."""
    folder = Path(data_dir).expanduser() / card.name
    if not folder.is_dir():
        raise DataError(
            f"task '{card.name}': data folder {folder} does not exist "
            f"(expected WebDataset shards laid out as <data_dir>/{card.name}/{next(iter(card.data.patterns().values()))})"
        )
    return folder


def shard_files(card: TaskCard, data_dir: str | Path) -> dict[str, list[str]]:
    """Split or fold name -> sorted list of shard paths; every pattern must match at least one file."""
    folder = task_folder(card, data_dir)
    files: dict[str, list[str]] = {}
    for split, pattern in card.data.patterns().items():
        matched = sorted(str(p) for p in folder.glob(pattern) if p.is_file())
        if not matched:
            raise DataError(f"task '{card.name}', split '{split}': no shard matches {folder / pattern}")
        files[split] = matched
    return files

"""Locate a task's WebDataset shards for each split or fold, with errors that name what is missing.

Two layouts are read:
- X-ARES' (its Zenodo archives unpacked): ``<data_dir>/<task>/<pattern>`` from the card;
- a Hub dataset repo (``hf://datasets/ORG/NAME``, or a local folder laid out as one): its dataset card's
  YAML ``configs`` name the files of every split and fold of each task (config name = task name).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml

from ..messages import quoted
from ..paths import child_path
from ..tasks.card import TaskCard


class DataError(FileNotFoundError):
    """A task's data folder or shards are missing or unreadable; the message names task, split and path."""


def task_folder(card: TaskCard, data_dir: str | Path) -> Path:
    """``<data_dir>/<task name>``, the layout of X-ARES' Zenodo archives once unpacked."""
    folder = child_path(Path(data_dir).expanduser(), card.name, "task name", error=DataError)
    if not folder.is_dir():
        raise DataError(
            f"task '{card.name}': data folder {folder} does not exist "
            f"(expected WebDataset shards laid out as <data_dir>/{card.name}/{next(iter(card.data.patterns().values()))})"
        )
    return folder


def is_hub_layout(data_dir: str | Path) -> bool:
    """A Hub dataset repo id/URL, or a local folder whose README.md declares ``configs``."""
    text = str(data_dir)
    if text.startswith("hf://"):
        return True
    readme = Path(text).expanduser() / "README.md"
    return readme.is_file() and "configs" in _card_header(readme.read_text())


def _card_header(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    try:
        header = yaml.safe_load(text.split("---", 2)[1])
    except yaml.YAMLError:
        return {}
    return header if isinstance(header, dict) else {}


def _hub_files(card: TaskCard, data_dir: str | Path) -> dict[str, list[str]]:
    import fsspec

    root = str(data_dir).rstrip("/")
    fs, base = fsspec.core.url_to_fs(root)
    readme = f"{base}/README.md"
    if not fs.exists(readme):
        raise DataError(f"task '{card.name}': {root} has no README.md dataset card declaring its configs")
    with fs.open(readme, "r") as handle:
        configs = _card_header(handle.read()).get("configs") or []
    configs = [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []
    config = next((c for c in configs if c.get("config_name") == card.name), None)
    if config is None:
        names = ", ".join(str(c.get("config_name", "?")) for c in configs)
        raise DataError(f"task '{card.name}': the dataset card of {root} has no config '{card.name}' (has: {names})")
    entries = config.get("data_files")
    if not isinstance(entries, list) or not all(isinstance(d, dict) and "split" in d and "path" in d for d in entries):
        raise DataError(f"task '{card.name}': config '{card.name}' of {root}: 'data_files' must be a list of "
                        "{split, path} entries")
    declared = {d["split"]: d["path"] for d in entries}
    files: dict[str, list[str]] = {}
    for split in card.data.patterns():
        if split not in declared:
            raise DataError(f"task '{card.name}', split '{split}': config '{card.name}' of {root} declares no files for it")
        patterns = declared[split] if isinstance(declared[split], list) else [declared[split]]
        for pattern in patterns:
            path = PurePosixPath(str(pattern))
            if not isinstance(pattern, str) or not pattern or path.is_absolute() or ".." in path.parts:
                raise DataError(f"task '{card.name}', split '{split}': config '{card.name}' of {root} declares the path "
                                f"{quoted(pattern)}: paths must be relative to the repo and stay inside it")
        matched = sorted(m for pattern in patterns for m in fs.glob(f"{base}/{pattern}"))
        if not matched:
            raise DataError(f"task '{card.name}', split '{split}': no file in {root} matches {patterns}")
        prefix = root[: len(root) - len(base)] if root.endswith(base) else ""
        files[split] = [prefix + m if prefix else m for m in matched]
    return _disjoint(card, files)


def shard_files(card: TaskCard, data_dir: str | Path) -> dict[str, list[str]]:
    """Split or fold name -> sorted list of shard paths (or URLs); every split must have at least one, and no
    shard may be in two splits or folds (a test shard matched by the train pattern would be trained on)."""
    if is_hub_layout(data_dir):
        return _hub_files(card, data_dir)
    folder = task_folder(card, data_dir)
    files: dict[str, list[str]] = {}
    for split, pattern in card.data.patterns().items():
        matched = sorted(str(p) for p in folder.glob(pattern) if p.is_file())
        if not matched:
            raise DataError(f"task '{card.name}', split '{split}': no shard matches {folder / pattern}")
        files[split] = matched
    return _disjoint(card, files)


def _disjoint(card: TaskCard, files: dict[str, list[str]]) -> dict[str, list[str]]:
    """``files`` unless two splits (or folds) share shards.

    One exception, X-ARES' own choice for DESED, FSDKaggle2018 and VoxLingua33: valid and test may be the very same
    shards (the card gives both the same files); then valid selects the epoch on the test data, as in X-ARES."""
    names = list(files)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared = sorted(set(files[first]) & set(files[second]))
            if not shared or ({first, second} == {"valid", "test"} and set(files[first]) == set(files[second])):
                continue
            shown = ", ".join(Path(f).name for f in shared[:5]) + (f", ... ({len(shared)} shards)" if len(shared) > 5 else "")
            raise DataError(
                f"task '{card.name}': splits '{first}' and '{second}' share {len(shared)} shard(s): {shown}; "
                "splits and folds must be disjoint (check the card's patterns)"
            )
    return files


def unused_shards(card: TaskCard, data_dir: str | Path, files: dict[str, list[str]]) -> list[str]:
    """Tar files under the task's folder that no split or fold of the card uses (X-ARES layout; none for the Hub's).

    Hidden files and folders (partial downloads, locks) are not shards."""
    if is_hub_layout(data_dir):
        return []
    folder = Path(data_dir).expanduser() / card.name
    used = {str(Path(f)) for split_files in files.values() for f in split_files}
    hidden = lambda p: any(part.startswith(".") for part in p.relative_to(folder).parts)  # noqa: E731
    return sorted(str(p) for p in folder.rglob("*.tar") if p.is_file() and not hidden(p) and str(p) not in used)

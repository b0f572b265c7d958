"""Make a task's data available: found locally or in a Hub-layout folder, else fetched from its Zenodo record."""

from __future__ import annotations

from pathlib import Path

from ..paths import child_path
from ..tasks.card import TaskCard
from .shards import DataError, is_hub_layout, shard_files
from .zenodo import download_lock, fetch_record, offline


def ensure_task_data(card: TaskCard, data_dir: str | Path, download: bool = True) -> dict[str, list[str]]:
    """The task's shard files; downloads the Zenodo record into ``<data_dir>/<task>`` on first use.

    Never downloads for private tasks, tasks without a record, Hub-layout data or in offline mode
    (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``/``XARES_HF_OFFLINE``): the error says where the data must be.
    """
    try:
        return shard_files(card, data_dir)
    except DataError as missing:
        if is_hub_layout(data_dir):
            raise
        where = Path(data_dir).expanduser() / card.name / next(iter(card.data.patterns().values()))
        if card.private or not card.data.zenodo_id:
            raise DataError(
                f"{missing}\n  task '{card.name}' has no public download: place its WebDataset shards as {where}"
            ) from None
        if not download or offline():
            raise DataError(
                f"{missing}\n  offline: run `xares-hf download {card.name}` on a machine with network access "
                f"(Zenodo record {card.data.zenodo_id}), or place the shards as {where}"
            ) from None
    folder = child_path(Path(data_dir).expanduser(), card.name, "task name", error=DataError)
    folder.mkdir(parents=True, exist_ok=True)
    with download_lock(folder):  # two runs never write the same partial download
        try:
            return shard_files(card, data_dir)  # another run finished it while this one waited
        except DataError:
            fetch_record(card.data.zenodo_id, folder)
    return shard_files(card, data_dir)

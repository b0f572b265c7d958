"""Publish task shards as a Hub dataset repo whose card declares every split and fold explicitly.

datasets' automatic split inference gets X-ARES' file names wrong (fold tars carry no split word,
Clotho's evaluation/validation are swapped, DESED's eval is both valid and test), so every task is a
config with ``data_files`` per split: ``load_dataset("ORG/NAME", "esc50", split="fold1")`` is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ..tasks.card import TaskCard
from .shards import DataError, shard_files, task_folder


@dataclass
class PushPlan:
    """What a push uploads: (local file, path in repo) pairs and the dataset card text."""

    repo_id: str
    files: list[tuple[Path, str]]
    cards: list[TaskCard]

    @property
    def card(self) -> str:
        return dataset_card(self.cards)

    def __str__(self) -> str:
        lines = [f"dataset repo {self.repo_id}: {len(self.files)} files + README.md"]
        lines += [f"  {remote}  <- {local} ({local.stat().st_size} bytes)" for local, remote in self.files]
        return "\n".join(lines) + "\n--- README.md ---\n" + self.card


def configs_for(cards: list[TaskCard]) -> list[dict]:
    """One ``configs`` entry per task: its name, and a ``data_files`` pattern for each split or fold."""
    return [
        {
            "config_name": card.name,
            "data_files": [{"split": split, "path": f"{card.name}/{pattern}"} for split, pattern in card.data.patterns().items()],
        }
        for card in cards
    ]


def dataset_card(cards: list[TaskCard], existing_configs: list[dict] | None = None) -> str:
    """A dataset card whose YAML header declares the tasks' configs (merged over ``existing_configs``)."""
    configs = {c["config_name"]: c for c in existing_configs or []}
    configs.update({c["config_name"]: c for c in configs_for(cards)})
    header = yaml.safe_dump({"configs": list(configs.values()), "tags": ["audio", "webdataset", "x-ares"]}, sort_keys=False)
    rows = "\n".join(
        f"| `{c.name}` | {c.formal_name} | {c.domain} | {c.task_type} | {c.metric} | {', '.join(c.data.patterns())} |" for c in cards
    )
    return (
        f"---\n{header}---\n\n# X-ARES tasks as WebDataset shards\n\n"
        "Each task is a config; load one split or fold with "
        "`datasets.load_dataset(REPO, TASK, split=SPLIT, streaming=True)`, or evaluate an encoder with "
        "`xares_hf.evaluate(model, tasks=[TASK], data_dir='hf://datasets/REPO')`.\n\n"
        "| config | task | domain | type | metric | splits |\n|---|---|---|---|---|---|\n" + rows + "\n\n"
        "Samples are `<key>.<audio>` + `<key>.json` (labels), as in the X-ARES Zenodo archives; the original "
        "datasets' licences apply.\n"
    )


def plan_push(cards: list[TaskCard], data_dir: str | Path, repo_id: str) -> PushPlan:
    """Every shard of the tasks, each at ``<task>/<its path inside the task folder>`` in the repo (so the card's
    patterns match there as they do locally, and two shards never share a name)."""
    files: dict[str, Path] = {}
    for card in cards:
        folder = task_folder(card, data_dir).resolve()
        for split_files in shard_files(card, data_dir).values():
            for f in split_files:
                remote = f"{card.name}/{Path(f).resolve().relative_to(folder).as_posix()}"
                if files.setdefault(remote, Path(f)) != Path(f):
                    raise DataError(f"task '{card.name}': {files[remote]} and {f} would both be uploaded as {remote}")
    return PushPlan(repo_id, list((local, remote) for remote, local in files.items()), cards)


def push(plan: PushPlan, private: bool = False) -> str:
    """Create the dataset repo if needed and upload the shards and card in one commit; returns the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    api = HfApi()
    api.create_repo(plan.repo_id, repo_type="dataset", exist_ok=True, private=private)
    existing: list[dict] = []
    try:  # keep the configs of tasks pushed before
        text = Path(hf_hub_download(plan.repo_id, "README.md", repo_type="dataset")).read_text()
        existing = (yaml.safe_load(text.split("---", 2)[1]) or {}).get("configs", []) if text.startswith("---") else []
    except EntryNotFoundError:
        pass
    card = dataset_card(plan.cards, existing)
    operations = [CommitOperationAdd(path_in_repo=remote, path_or_fileobj=str(local)) for local, remote in plan.files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    info = api.create_commit(plan.repo_id, operations, commit_message="Add X-ARES task shards (xares-hf push-data)", repo_type="dataset")
    return info.commit_url

"""Embeddings on disk, keyed by a fingerprint of encoder, task and data, so a rerun does no encoding.

Each split is one ``.npz`` with the mean-pooled clip embeddings (what clip probes train on, held in
memory), for tasks that need them the frame embeddings (concatenated, with each clip's frame count),
plus each sample's key, shard, duration and JSON. Files are written to a temporary name and renamed,
so an interrupted run never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import default_cache_dir

CACHE_VERSION = 2


@dataclass
class SplitEmbeddings:
    """Pooled embeddings of one split, with where each row came from and its raw JSON."""

    pooled: np.ndarray  # (N, D) float32
    keys: list[str]
    urls: list[str]
    metas: list[object]
    durations: np.ndarray  # (N,) seconds of audio encoded
    frames: list[np.ndarray] | None = None  # per sample (T_i, D), when the task needs frames

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def wheres(self) -> list[str]:
        return [f"file {u}, sample '{k}'" for u, k in zip(self.urls, self.keys)]

    @staticmethod
    def merge(parts: list[tuple["SplitEmbeddings", list]]) -> "SplitEmbeddings":
        """Join per-process parts, each with its samples' places in the split, back into the split's order."""
        rows = sorted((tuple(o), p, i) for p, (_, order) in enumerate(parts) for i, o in enumerate(order))

        def pick(attr: str) -> list:
            return [getattr(parts[p][0], attr)[i] for _, p, i in rows]

        has_frames = any(part.frames is not None for part, _ in parts)
        pooled = np.stack(pick("pooled")) if rows else parts[0][0].pooled
        return SplitEmbeddings(
            pooled.astype(np.float32), pick("keys"), pick("urls"), pick("metas"), np.asarray(pick("durations")),
            pick("frames") if has_frames else None,
        )


def fingerprint(encoder_identity: dict, task: str, files: list[str], extra: dict) -> str:
    """A stable hash of everything that changes the embeddings of one split."""
    stats = []
    for f in files:
        if "://" in f:  # a Hub file: its path and the commit/etag fsspec reports
            import fsspec

            fs, path = fsspec.core.url_to_fs(f)
            info = fs.info(path)
            stats.append([f, info.get("size"), str(info.get("last_commit") or info.get("blob_id") or info.get("etag"))])
        else:
            st = Path(f).stat()
            stats.append([str(Path(f).resolve()), st.st_size, int(st.st_mtime)])
    blob = json.dumps(
        {"v": CACHE_VERSION, "encoder": encoder_identity, "task": task, "files": stats, **extra},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class EmbeddingCache:
    """Read and write :class:`SplitEmbeddings` under ``<root>/<task>/<fingerprint>.npz``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir() / "embeddings"

    def path(self, task: str, key: str) -> Path:
        return self.root / task / f"{key}.npz"

    def load(self, task: str, key: str, with_order: bool = False):
        """The cached split, or None; ``with_order`` returns ``(split, order)`` for a per-process part."""
        path = self.path(task, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                frames = None
                if "frames" in data:
                    frames = np.split(data["frames"], np.cumsum(data["frame_counts"])[:-1])
                split = SplitEmbeddings(
                    pooled=data["pooled"],
                    keys=data["keys"].tolist(),
                    urls=data["urls"].tolist(),
                    metas=[json.loads(m) for m in data["metas"].tolist()],
                    durations=data["durations"],
                    frames=frames,
                )
                return (split, data["order"].tolist()) if with_order else split
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # unreadable entry: encode again rather than fail or mis-score
            return None

    def write_log(self, task: str, key: str, info: dict) -> None:
        """A small JSON beside an entry saying how it was made (e.g. clips encoded per process)."""
        self.path(task, key).with_suffix(".json").write_text(json.dumps(info) + "\n")

    def read_log(self, task: str, key: str) -> dict:
        return json.loads(self.path(task, key).with_suffix(".json").read_text())

    def save(self, task: str, key: str, split: SplitEmbeddings, order: list | None = None) -> Path:
        path = self.path(task, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        extra = {} if order is None else {"order": np.asarray(order, dtype=np.int64).reshape(-1, 3)}
        if split.frames:
            extra["frames"] = np.concatenate(split.frames).astype(np.float32)
            extra["frame_counts"] = np.asarray([f.shape[0] for f in split.frames], dtype=np.int64)
        np.savez(
            tmp,
            **extra,
            durations=np.asarray(split.durations, dtype=np.float64),
            pooled=split.pooled.astype(np.float32),
            keys=np.asarray(split.keys, dtype=str),
            urls=np.asarray(split.urls, dtype=str),
            metas=np.asarray([json.dumps(m) for m in split.metas], dtype=str),
        )
        os.replace(tmp, path)
        return path

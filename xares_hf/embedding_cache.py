"""Embeddings and finished task results on disk, keyed by fingerprints, so a rerun redoes no finished work.

Each shard of a split is one ``.npz`` entry with the mean-pooled clip embeddings (what clip probes train on,
held in memory), for tasks that need them the frame embeddings (concatenated, with each clip's frame count),
plus each sample's key, shard, duration and JSON, and the samples skipped as bad. A run killed mid-split
keeps the shards it finished. Files are written to a temporary name and renamed, so an interrupted run never
leaves a half-written entry under a final name; an entry is written under a lock, so two runs sharing a cache
never encode the same shard twice (the second waits, saying who holds the lock, then reads the entry).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .paths import atomic_file, atomic_write_text, child_path, default_cache_dir

CACHE_VERSION = 4  # 3: one entry per shard, skipped samples recorded; batches of similar length; 4: left_out
logger = logging.getLogger("xares_hf")


@dataclass
class SplitEmbeddings:
    """Pooled embeddings of one split, with where each row came from and its raw JSON."""

    pooled: np.ndarray  # (N, D) float32
    keys: list[str]
    urls: list[str]
    metas: list[object]
    durations: np.ndarray  # (N,) seconds of audio encoded
    frames: list[np.ndarray] | None = None  # per sample (T_i, D), when the task needs frames
    skipped: list[dict] = field(default_factory=list)  # {"file", "key", "reason"} of samples left out as bad
    left_out: list[dict] = field(default_factory=list)  # {"split", "file", "key", "reason"}: not scored, nothing wrong

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
        skipped = sorted((s for part, _ in parts for s in part.skipped), key=lambda s: s.get("position", 0))
        left_out = [x for part, _ in parts for x in part.left_out]
        return SplitEmbeddings(
            pooled.astype(np.float32), pick("keys"), pick("urls"), pick("metas"), np.asarray(pick("durations")),
            pick("frames") if has_frames else None, skipped, left_out,
        )

    @staticmethod
    def concat(parts: list["SplitEmbeddings"]) -> "SplitEmbeddings":
        """The shards of a split, one after the other."""
        dim = parts[0].pooled.shape[1] if parts else 0
        pooled = [p.pooled for p in parts if len(p)]
        has_frames = any(p.frames is not None for p in parts)
        return SplitEmbeddings(
            np.concatenate(pooled).astype(np.float32) if pooled else np.zeros((0, dim), np.float32),
            [k for p in parts for k in p.keys], [u for p in parts for u in p.urls], [m for p in parts for m in p.metas],
            np.concatenate([np.asarray(p.durations, dtype=np.float64) for p in parts]) if parts else np.zeros(0),
            [f for p in parts for f in (p.frames or [])] if has_frames else None,
            [s for p in parts for s in p.skipped],
            [x for p in parts for x in p.left_out],
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
            # nanosecond mtime and inode: a shard rewritten within the same second (or replaced) is a new shard
            stats.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns, st.st_ino])
    blob = json.dumps(
        {"v": CACHE_VERSION, "encoder": encoder_identity, "task": task, "files": stats, **extra},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class EmbeddingCache:
    """Read and write :class:`SplitEmbeddings` under ``<root>/<task>/<fingerprint>.npz`` and finished task
    results under ``<root>/<task>/results/<fingerprint>.json``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir() / "embeddings"

    def path(self, task: str, key: str) -> Path:
        return child_path(self.root, task, "task name") / f"{key}.npz"

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
                    skipped=[json.loads(x) for x in data["skipped"].tolist()] if "skipped" in data else [],
                    left_out=[json.loads(x) for x in data["left_out"].tolist()] if "left_out" in data else [],
                )
                return (split, data["order"].tolist()) if with_order else split
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # unreadable entry: encode again rather than fail or mis-score
            return None

    def write_log(self, task: str, key: str, info: dict) -> None:
        """A small JSON beside an entry saying how it was made (e.g. clips encoded per process)."""
        atomic_write_text(self.path(task, key).with_suffix(".json"), json.dumps(info) + "\n")

    def read_log(self, task: str, key: str) -> dict:
        return json.loads(self.path(task, key).with_suffix(".json").read_text())

    def save(self, task: str, key: str, split: SplitEmbeddings, order: list | None = None) -> Path:
        path = self.path(task, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if order is None else {"order": np.asarray(order, dtype=np.int64).reshape(-1, 3)}
        if split.frames:
            extra["frames"] = np.concatenate(split.frames).astype(np.float32)
            extra["frame_counts"] = np.asarray([f.shape[0] for f in split.frames], dtype=np.int64)
        with atomic_file(path) as out:
            np.savez(
                out,
                **extra,
                durations=np.asarray(split.durations, dtype=np.float64),
                pooled=split.pooled.astype(np.float32),
                keys=np.asarray(split.keys, dtype=str),
                urls=np.asarray(split.urls, dtype=str),
                metas=np.asarray([json.dumps(m) for m in split.metas], dtype=str),
                skipped=np.asarray([json.dumps(x) for x in split.skipped], dtype=str),
                left_out=np.asarray([json.dumps(x) for x in split.left_out], dtype=str),
            )
        return path

    @contextlib.contextmanager
    def lock(self, task: str, key: str) -> Iterator[None]:
        """Hold the entry's lock (released by the OS if the process dies, even by SIGKILL).

        A run that finds the lock taken says which process holds it, then waits. Temporary files that a killed
        run left beside the entry are removed once the lock is held (no one else can be writing them).
        """
        from filelock import FileLock, Timeout

        path = self.path(task, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path.with_suffix(".lock")))
        owner = path.with_suffix(".owner")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = owner.read_text().strip() if owner.is_file() else "another process"
            logger.warning("%s is being written by %s; waiting for it", path, holder)
            lock.acquire()
        try:
            for stale in path.parent.glob(f".{key}.*.tmp"):
                stale.unlink(missing_ok=True)
            owner.write_text(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            yield
        finally:
            owner.unlink(missing_ok=True)
            lock.release()

    def result_path(self, task: str, key: str) -> Path:
        return child_path(self.root, task, "task name") / "results" / f"{key}.json"

    def load_result(self, task: str, key: str) -> dict | None:
        """A finished task result stored by :meth:`save_result`, or None (also for an unreadable file)."""
        path = self.result_path(task, key)
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return None

    def save_result(self, task: str, key: str, result: dict) -> Path:
        path = self.result_path(task, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(result) + "\n")

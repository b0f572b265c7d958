"""Embeddings and finished task results on disk, keyed by fingerprints, so a rerun redoes no finished work.

Each shard of a split is one entry of the embedding store (:mod:`xares_hf.store`: a checksummed safetensors file
read through a memory map) with the mean-pooled clip embeddings, for tasks that need them the frame embeddings
(concatenated, with each clip's offset), plus each sample's key, shard, duration and JSON, and the samples skipped
as bad. Probes read a batch at a time from the maps, so memory does not grow with the data. A run killed mid-split
keeps the shards it finished. Files are written to a temporary name and renamed, so an interrupted run (or a full
disk) never leaves a half-written entry under a final name; an entry is written under a lock, so two runs sharing
a cache never encode the same shard twice (the second waits, saying who holds the lock, then reads the entry). An
entry that is truncated or altered fails its checksum, is removed and encoded again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .paths import atomic_file, atomic_write_text, child_path, default_cache_dir, replace_text_locked
from .store import Entry, EntryError, Frames, Rows, write_entry

# 3: one entry per shard, skipped samples recorded; batches of similar length; 4: left_out; 5: memory-mapped store
CACHE_VERSION = 5
logger = logging.getLogger("xares_hf")


@dataclass
class SplitEmbeddings:
    """Embeddings of one split (views of its stored entries), with where each row came from and its raw JSON."""

    pooled: Rows  # (N, D) float32
    keys: list[str]
    urls: list[str]
    metas: list[object]
    durations: np.ndarray  # (N,) seconds of audio encoded
    frames: Frames | None = None  # per sample (T_i, D), when the task needs frames
    skipped: list[dict] = field(default_factory=list)  # {"file", "key", "reason"} of samples left out as bad
    left_out: list[dict] = field(default_factory=list)  # {"split", "file", "key", "reason"}: not scored, nothing wrong

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def wheres(self) -> list[str]:
        return [f"file {u}, sample '{k}'" for u, k in zip(self.urls, self.keys)]

    def select(self, rows: list[int]) -> "SplitEmbeddings":
        """The given rows, in that order (views: nothing is read)."""
        pick = lambda values: [values[i] for i in rows]  # noqa: E731
        return SplitEmbeddings(self.pooled.select(rows), pick(self.keys), pick(self.urls), pick(self.metas),
                               self.durations[rows], None if self.frames is None else self.frames.select(rows),
                               self.skipped, self.left_out)

    @staticmethod
    def merge(parts: list[tuple["SplitEmbeddings", list]]) -> "SplitEmbeddings":
        """Join per-process parts of one shard, each with its samples' places in the split, back into the split's
        order (views of the parts: the frames are read a clip at a time when the merged entry is written)."""
        rows = sorted((tuple(o), p, i) for p, (_, order) in enumerate(parts) for i, o in enumerate(order))
        joined = SplitEmbeddings.concat([part for part, _ in parts])
        offsets = np.cumsum([0] + [len(part) for part, _ in parts])
        joined = joined.select([int(offsets[p] + i) for _, p, i in rows])
        skipped = sorted(joined.skipped, key=lambda s: s.get("position", 0))
        return SplitEmbeddings(Rows.from_array(joined.pooled.numpy()), joined.keys, joined.urls, joined.metas,
                               joined.durations, joined.frames, skipped, joined.left_out)

    @staticmethod
    def concat(parts: list["SplitEmbeddings"]) -> "SplitEmbeddings":
        """The shards of a split, one after the other (views: nothing is read)."""
        has_frames = any(p.frames is not None for p in parts)
        return SplitEmbeddings(
            Rows.concat([p.pooled for p in parts]),
            [k for p in parts for k in p.keys], [u for p in parts for u in p.urls], [m for p in parts for m in p.metas],
            np.concatenate([np.asarray(p.durations, dtype=np.float64) for p in parts]) if parts else np.zeros(0),
            Frames.concat([p.frames for p in parts]) if has_frames else None,
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
        return child_path(self.root, task, "task name") / f"{key}.safetensors"

    def load(self, task: str, key: str, with_order: bool = False):
        """The cached split as views of its memory-mapped entry, or None (also for an entry that fails its checks,
        which is removed so that it is encoded again); ``with_order`` returns ``(split, order)`` for a part."""
        path = self.path(task, key)
        if not path.is_file():
            return None
        try:
            entry = Entry(path)
            records = json.loads(entry.array("records").tobytes())
            offsets = entry.array("frame_offsets").copy() if "frame_offsets" in entry.table else None
            split = SplitEmbeddings(
                pooled=Rows([(entry, "pooled")]),
                keys=records["keys"], urls=records["urls"], metas=records["metas"],
                durations=entry.array("durations").copy(),
                frames=None if offsets is None else Frames([((entry, "frames"), offsets)]),
                skipped=records["skipped"], left_out=records["left_out"],
            )
            if not len(split.keys) == len(split.urls) == len(split.metas) == len(split.durations) == len(split.pooled):
                raise EntryError(f"{path}: its arrays and records disagree on the number of samples")
            order = entry.array("order").tolist() if with_order else None
        except (EntryError, KeyError, ValueError, TypeError) as err:
            logger.warning("dropping the cached embeddings %s: %s; they will be encoded again", path, err)
            path.unlink(missing_ok=True)
            return None
        return (split, order) if with_order else split

    def write_log(self, task: str, key: str, info: dict) -> None:
        """A small JSON beside an entry saying how it was made (e.g. clips encoded per process)."""
        atomic_write_text(self.path(task, key).with_suffix(".json"), json.dumps(info) + "\n")

    def read_log(self, task: str, key: str) -> dict:
        return json.loads(self.path(task, key).with_suffix(".json").read_text())

    def save(self, task: str, key: str, split: SplitEmbeddings, order: list | None = None) -> Path:
        """Write one entry (under a temporary name, renamed when whole); a failed write leaves no entry and says
        which file could not be written and why."""
        path = self.path(task, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        records = {"keys": list(split.keys), "urls": list(split.urls), "metas": list(split.metas),
                   "skipped": split.skipped, "left_out": split.left_out}
        arrays = {
            "pooled": split.pooled.numpy(),
            "durations": np.asarray(split.durations, dtype=np.float64),
            "records": np.frombuffer(json.dumps(records).encode(), dtype=np.uint8),
        }
        if order is not None:
            arrays["order"] = np.asarray(order, dtype=np.int64).reshape(-1, 3)
        if split.frames is not None:
            arrays["frames"], arrays["frame_offsets"] = split.frames.packed()
        try:
            with atomic_file(path) as out:
                write_entry(out, arrays)
        except OSError as err:
            hint = " (the disk is full: free space or pass another cache_dir)" if err.errno == errno.ENOSPC else ""
            raise OSError(err.errno, f"cannot write the embeddings of task '{task}' to {path}: "
                                     f"{err.strerror or err}{hint}") from err
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
        """Store a finished task result (a temporary file left by a run killed while writing it is removed)."""
        path = self.result_path(task, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return replace_text_locked(path, json.dumps(result) + "\n")

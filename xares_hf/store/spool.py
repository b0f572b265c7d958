"""Frames spooled to disk while a shard is encoded, so that encoding holds one batch of frames, not a shard's."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import numpy as np

from .tables import Frames


class FrameSpool:
    """Each encoded clip's frames appended to an anonymous temporary file as they come (in encoding order), read
    back through a memory map as :class:`Frames` in the clips' own order."""

    def __init__(self, folder: Path | None) -> None:
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.file = tempfile.TemporaryFile(dir=folder, prefix=".frames-", suffix=".spool")
        self.slots: list[int] = []
        self.lengths: list[int] = []

    def add(self, slot: int, frames: np.ndarray) -> None:
        try:
            self.file.write(np.ascontiguousarray(frames, dtype=np.float32).reshape(-1).view(np.uint8).data)
        except OSError as err:
            hint = " (the disk is full: free space or pass another cache_dir)" if err.errno == errno.ENOSPC else ""
            raise OSError(err.errno, f"cannot spool encoded frames in {self.folder or tempfile.gettempdir()}: "
                                     f"{err.strerror or err}{hint}") from err
        self.slots.append(slot)
        self.lengths.append(frames.shape[0])

    def frames(self, clips: int, dim: int) -> Frames:
        """The spooled frames of clips ``0..clips-1`` (every slot added once)."""
        self.file.flush()
        offsets = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)]).astype(np.int64)
        total = int(offsets[-1])
        data = (np.memmap(self.file, dtype=np.float32, mode="r", shape=(total, dim)) if total
                else np.zeros((0, dim), np.float32))
        self.file.close()  # the map keeps the (already unlinked) file until it is dropped
        position = np.empty(clips, np.int64)
        position[np.asarray(self.slots, dtype=np.int64)] = np.arange(len(self.slots))
        return Frames([(data, offsets)], np.stack([np.zeros(clips, np.int64), position], axis=1))

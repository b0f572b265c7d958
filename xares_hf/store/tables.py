"""Embeddings addressed by clip without holding them: pooled rows and per-clip frames over stored arrays.

A split is many shards, each an entry of the store; its rows (:class:`Rows`) and frames (:class:`Frames`) are
lists of parts (memory-mapped arrays, or arrays in memory while a shard is being encoded) plus, for every clip of
the view, which part and which row it is. Joining folds, choosing a subset and choosing one layer's columns make
new views over the same parts; only :meth:`Rows.take` and :meth:`Frames.take` read numbers, one batch at a time.
"""

from __future__ import annotations

from typing import Iterator, Sequence, Union

import numpy as np

from .entry import Entry, Streamed

Part = Union[np.ndarray, tuple[Entry, str]]


def _array(part: Part) -> np.ndarray:
    return part if isinstance(part, np.ndarray) else part[0].array(part[1])


def _rows_of(part: Part) -> int:
    if isinstance(part, np.ndarray):
        return part.shape[0]
    return int(part[0].table[part[1]]["shape"][0])


def _width_of(part: Part) -> int:
    shape = part.shape if isinstance(part, np.ndarray) else part[0].table[part[1]]["shape"]
    return int(shape[1])


def _compose(columns: slice, width: int, inner: slice) -> slice:
    picked = range(width)[columns][inner]
    return slice(picked.start, picked.stop, picked.step)


def _identity(sizes: Sequence[int]) -> np.ndarray:
    if not sizes:
        return np.zeros((0, 2), np.int64)
    return np.concatenate([np.stack([np.full(n, p, np.int64), np.arange(n, dtype=np.int64)], axis=1)
                           for p, n in enumerate(sizes)])


class _View:
    """What rows and frames share: parts, each clip's (part, row), and a column slice."""

    def __init__(self, parts: list, where: np.ndarray, columns: slice, width: int) -> None:
        self.parts, self.where, self.columns, self.width = parts, where, columns, width

    def __len__(self) -> int:
        return len(self.where)

    @property
    def dim(self) -> int:
        return len(range(self.width)[self.columns])

    def _like(self, where: np.ndarray, columns: slice):
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.where, view.columns = where, columns
        return view

    def select(self, rows: Sequence[int] | np.ndarray | slice):
        """A view of the given clips (an index set or a slice), in that order; nothing is read."""
        return self._like(self.where[rows], self.columns)

    def cols(self, columns: slice):
        """A view of some columns of every clip (e.g. one layer of ``layer="all"``); nothing is read."""
        return self._like(self.where, _compose(self.columns, self.width, columns))

    @classmethod
    def _join(cls, views: list, parts_of) -> tuple[list, np.ndarray]:
        parts, wheres = [], []
        for view in views:
            if view.columns != views[0].columns or view.width != views[0].width:
                raise ValueError("views with different columns cannot be joined")
            wheres.append(view.where + np.asarray([len(parts), 0], np.int64))
            parts.extend(parts_of(view))
        return parts, np.concatenate(wheres) if wheres else np.zeros((0, 2), np.int64)


class Rows(_View):
    """``(clips, dim)`` float32 rows (pooled embeddings) over stored arrays."""

    def __init__(self, parts: list[Part], where: np.ndarray | None = None, columns: slice = slice(None)) -> None:
        width = _width_of(parts[0]) if parts else 0
        super().__init__(parts, _identity([_rows_of(p) for p in parts]) if where is None else where, columns, width)

    @staticmethod
    def from_array(array: np.ndarray) -> "Rows":
        array = np.asarray(array, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"pooled embeddings must be 2-D (clips, dim), got shape {array.shape}")
        return Rows([array])

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.dim)

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The given clips' rows, read into a new float32 array."""
        where = self.where[np.asarray(rows, dtype=np.int64)]
        out = np.empty((len(where), self.dim), np.float32)
        owners = where[:, 0]
        for part in np.unique(owners):
            mine = owners == part
            out[mine] = _array(self.parts[part])[where[mine, 1], self.columns]
        return out

    def numpy(self) -> np.ndarray:
        """Every row in memory (for what needs them all at once, e.g. k-NN)."""
        return self.take(np.arange(len(self)))

    def __getitem__(self, row: int | slice):
        return self.select(row) if isinstance(row, slice) else self.take([row])[0]

    @staticmethod
    def concat(views: list["Rows"]) -> "Rows":
        parts, where = _View._join(views, lambda v: v.parts)
        return Rows(parts, where, views[0].columns if views else slice(None)) if parts else Rows([], where)


class Frames(_View):
    """Each clip's ``(frames, dim)`` float32 array over stored concatenated frames and their offsets; a sequence
    (``len``, indexing, iteration) whose items are read on access."""

    def __init__(self, parts: list[tuple[Part, np.ndarray]], where: np.ndarray | None = None,
                 columns: slice = slice(None)) -> None:
        width = _width_of(parts[0][0]) if parts else 0
        sizes = [len(offsets) - 1 for _, offsets in parts]
        super().__init__(parts, _identity(sizes) if where is None else where, columns, width)

    @staticmethod
    def from_list(frames: list[np.ndarray]) -> "Frames":
        if not frames:
            return Frames([(np.zeros((0, 0), np.float32), np.zeros(1, np.int64))])
        offsets = np.concatenate([[0], np.cumsum([f.shape[0] for f in frames])]).astype(np.int64)
        return Frames([(np.concatenate([np.asarray(f, np.float32) for f in frames]), offsets)])

    @property
    def lengths(self) -> np.ndarray:
        """Each clip's number of frames, without reading any."""
        out = np.empty(len(self), np.int64)
        for part in np.unique(self.where[:, 0]):
            mine = self.where[:, 0] == part
            offsets = self.parts[part][1]
            rows = self.where[mine, 1]
            out[mine] = offsets[rows + 1] - offsets[rows]
        return out

    def take(self, rows: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """The given clips' frames, each read into a new float32 array."""
        out = []
        for part, row in self.where[np.asarray(rows, dtype=np.int64)]:
            data, offsets = self.parts[part]
            out.append(np.array(_array(data)[offsets[row] : offsets[row + 1], self.columns], dtype=np.float32))
        return out

    def __getitem__(self, row: int | slice):
        return self.select(row) if isinstance(row, slice) else self.take([row])[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        for row in range(len(self)):
            yield self[row]

    def packed(self) -> tuple[np.ndarray | Streamed, np.ndarray]:
        """All frames concatenated, as the store lays them out, and each clip's offset into them (``clips + 1``).

        A whole in-memory part is returned as it is; anything else (a reordered spool, parts of several entries)
        as a :class:`Streamed` array read a clip at a time, so writing it never holds a shard's frames."""
        if (len(self.parts) == 1 and isinstance(self.parts[0][0], np.ndarray) and self.columns == slice(None)
                and np.array_equal(self.where, _identity([len(self.parts[0][1]) - 1]))):
            return self.parts[0]
        lengths = self.lengths
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Streamed(np.dtype(np.float32), (int(offsets[-1]), self.dim), lambda: iter(self)), offsets

    @staticmethod
    def concat(views: list["Frames"]) -> "Frames":
        parts, where = _View._join(views, lambda v: v.parts)
        return Frames(parts, where, views[0].columns if views else slice(None))

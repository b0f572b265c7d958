"""One embedding-store entry on disk: a safetensors file whose arrays are read through a memory map.

The file is standard safetensors (a little-endian u64 header length, a JSON header naming each array's dtype,
shape and byte range, then the raw bytes), so ``safetensors.safe_open`` reads it too. It is written and read here
rather than with ``safetensors.numpy`` because that API copies every array into ``bytes`` to write it and into a
new array to read it; a shard's frames can be gigabytes, and a memory map costs no anonymous memory at all.

The header's ``__metadata__`` holds a SHA-256 of the header's array table and every array's bytes: a truncated
file, a flipped bit or a shortened array is an :class:`EntryError`, never numbers read wrong. The check reads the
whole file once per process (through the map, so it adds page cache, not anonymous memory).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Union

import numpy as np

FORMAT = "xares-hf-embeddings"
FORMAT_VERSION = "1"
_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_HASH_CHUNK = 64 << 20
_MAX_HEADER = 100 << 20  # safetensors' own limit
MAX_OPEN_MAPS = 256  # maps kept open at once; more entries are reopened on use (a file descriptor each)


class EntryError(ValueError):
    """An entry that cannot be trusted: truncated, altered, or not an entry of this format."""


@dataclass(frozen=True)
class Streamed:
    """An array written from pieces (e.g. each clip's frames, read from a spool file) instead of held whole:
    ``pieces()`` yields C-ordered arrays of ``dtype`` whose rows, one after the other, make ``shape``."""

    dtype: np.dtype
    shape: tuple[int, ...]
    pieces: Callable[[], Iterable[np.ndarray]]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


ArrayLike = Union[np.ndarray, Streamed]


def write_entry(out: BinaryIO, arrays: dict[str, ArrayLike]) -> None:
    """Write ``arrays`` (float32/float64/int64/uint8; :class:`Streamed` for one too big to hold) to ``out`` as a
    checksummed safetensors file, streaming each array's bytes (no copy of the data in memory)."""
    arrays = {name: a if isinstance(a, Streamed) else np.ascontiguousarray(a) for name, a in arrays.items()}
    table, offset = {}, 0
    for name in sorted(arrays):
        a = arrays[name]
        if np.dtype(a.dtype) not in _CODES:
            raise TypeError(f"array '{name}' has dtype {a.dtype}; the store holds {', '.join(map(str, _CODES))}")
        table[name] = {"dtype": _CODES[np.dtype(a.dtype)], "shape": list(a.shape),
                       "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    def header(sha256: str) -> bytes:
        text = json.dumps({"__metadata__": {"format": FORMAT, "version": FORMAT_VERSION, "sha256": sha256}, **table},
                          separators=(",", ":")).encode()
        return text + b" " * (-len(text) % 8)  # safetensors pads the header so the data starts 8-byte aligned

    digest = _digest_start(table)
    if not getattr(out, "seekable", lambda: False)():  # the digest first (one pass over the data), then the file
        for name in sorted(arrays):
            for chunk in _chunks(name, arrays[name]):
                digest.update(chunk)
        out.write(len(header(digest.hexdigest())).to_bytes(8, "little") + header(digest.hexdigest()))
        for name in sorted(arrays):
            for chunk in _chunks(name, arrays[name]):
                out.write(chunk)
        return
    # one pass: a header with a placeholder digest of the same length, the data hashed as it is written, then the
    # header again with the digest (a streamed array is read once, not twice)
    start = out.tell()
    placeholder = header("0" * digest.digest_size * 2)
    out.write(len(placeholder).to_bytes(8, "little") + placeholder)
    for name in sorted(arrays):
        for chunk in _chunks(name, arrays[name]):
            digest.update(chunk)
            out.write(chunk)
    final = header(digest.hexdigest())
    assert len(final) == len(placeholder)
    end = out.tell()
    out.seek(start + 8)
    out.write(final)
    out.seek(end)


def _chunks(name: str, array: ArrayLike) -> Iterable[memoryview]:
    """The bytes of an array, or of a streamed array's pieces (checked to add up to its declared size)."""
    if not isinstance(array, Streamed):
        yield _bytes(array)
        return
    written = 0
    for piece in array.pieces():
        piece = np.ascontiguousarray(piece, dtype=array.dtype)
        written += piece.nbytes
        yield _bytes(piece)
    if written != array.nbytes:
        raise ValueError(f"streamed array '{name}' gave {written} bytes where its shape {array.shape} needs {array.nbytes}")


def _bytes(array: np.ndarray) -> memoryview:
    """The array's bytes without a copy (also for an empty array)."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _digest_start(table: dict) -> "hashlib._Hash":
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode())


class Entry:
    """A stored entry opened for reading: its arrays as read-only views of a memory map (opened on use, at most
    :data:`MAX_OPEN_MAPS` at once), checked against its checksum when opened."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                length = int.from_bytes(handle.read(8), "little")
                if size < 8 or not 0 < length <= min(_MAX_HEADER, size - 8):
                    raise EntryError(f"{self.path}: not an embedding entry (header length {length}, file {size} bytes)")
                header = json.loads(handle.read(length))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise EntryError(f"{self.path}: unreadable header ({err})") from err
        meta = header.pop("__metadata__", None) if isinstance(header, dict) else None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise EntryError(f"{self.path}: not a {FORMAT} v{FORMAT_VERSION} entry")
        self._start, self._size, self._stamp = 8 + length, size, _stamp(self.path)
        self.table = self._checked_table(header, size - 8 - length)
        self._verify(meta.get("sha256"))

    def _checked_table(self, header: dict, data_bytes: int) -> dict:
        end = 0
        for name in sorted(header):
            info = header[name]
            try:
                dtype, shape, (begin, stop) = np.dtype(_DTYPES[info["dtype"]]), [int(n) for n in info["shape"]], info["data_offsets"]
            except (KeyError, TypeError, ValueError) as err:
                raise EntryError(f"{self.path}: array '{name}' is described wrongly ({err})") from err
            if begin != end or stop - begin != dtype.itemsize * int(np.prod(shape)) or min(shape, default=0) < 0:
                raise EntryError(f"{self.path}: array '{name}' does not match its byte range")
            end = stop
        if end != data_bytes:
            raise EntryError(f"{self.path}: {data_bytes} bytes of data where the header describes {end} (truncated?)")
        return header

    def _verify(self, expected: object) -> None:
        if _VERIFIED.get(self.path) == self._stamp:
            return
        digest = _digest_start(self.table)
        with memoryview(self._map()) as view:
            for name in sorted(self.table):
                begin, stop = self.table[name]["data_offsets"]
                for at in range(self._start + begin, self._start + stop, _HASH_CHUNK):
                    digest.update(view[at : min(at + _HASH_CHUNK, self._start + stop)])
        if digest.hexdigest() != expected:
            raise EntryError(f"{self.path}: checksum mismatch (the file was altered or damaged)")
        _VERIFIED[self.path] = self._stamp

    def _map(self) -> mmap.mmap:
        key = (self.path, self._stamp)
        mapped = _MAPS.pop(key, None)
        if mapped is None:
            with open(self.path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size != self._size:
                    raise EntryError(f"{self.path}: changed size since it was opened")
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if self._size else None
            while len(_MAPS) >= MAX_OPEN_MAPS:
                _MAPS.popitem(last=False)  # the map closes once no array view of it is left
        _MAPS[key] = mapped
        return mapped

    def names(self) -> list[str]:
        return list(self.table)

    def array(self, name: str) -> np.ndarray:
        """The array ``name``: a read-only view of the map (copy what you keep)."""
        info = self.table[name]
        dtype, shape = np.dtype(_DTYPES[info["dtype"]]), tuple(info["shape"])
        begin, stop = info["data_offsets"]
        if stop == begin:
            return np.zeros(shape, dtype)
        return np.frombuffer(self._map(), dtype=dtype, count=(stop - begin) // dtype.itemsize,
                             offset=self._start + begin).reshape(shape)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


_VERIFIED: dict[Path, tuple[int, int, int]] = {}
_MAPS: OrderedDict = OrderedDict()

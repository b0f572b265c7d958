"""Where xares-hf keeps things, and the one place where a name from outside becomes a path.

Names that come from other people (a Zenodo file key, an archive member, an encoder id, a task name) are
either refused (:func:`child_path`: they must already be one plain file name) or neutralised into one
(:func:`safe_component`: an id we must keep using, such as ``org/model``), and files are written whole under
a temporary name unique to the writer, then renamed into place (:func:`atomic_file`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from pathlib import Path, PureWindowsPath

from .leaderboard_app.names import safe_component  # noqa: F401  (the one sanitiser, shared with the Space)
from .messages import quoted
from typing import BinaryIO, Iterator

MAX_NAME_BYTES = 255  # the usual file-system limit for one path component


class UnsafeNameError(ValueError):
    """A name from outside cannot become a path: it is not one plain file name inside its folder."""


def default_cache_dir() -> Path:
    """``$XARES_HF_CACHE`` or ``$HF_HOME/xares_hf`` (``~/.cache/huggingface/xares_hf``)."""
    if os.environ.get("XARES_HF_CACHE"):
        return Path(os.environ["XARES_HF_CACHE"]).expanduser()
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    return hf_home / "xares_hf"


def default_data_dir() -> Path:
    """Where task data is read from and downloaded to: ``$XARES_HF_DATA`` or ``<cache>/data``."""
    if os.environ.get("XARES_HF_DATA"):
        return Path(os.environ["XARES_HF_DATA"]).expanduser()
    return default_cache_dir() / "data"


def name_problem(name: object) -> str | None:
    """Why ``name`` is not one plain file name (None when it is one)."""
    if not isinstance(name, str):
        return f"a name must be a string, got {type(name).__name__}"
    if name in ("", ".", ".."):
        return "an empty, '.' or '..' name is not a file name"
    if "/" in name or "\\" in name:
        return "a path separator ('/' or '\\') is not allowed in a file name"
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        return f"the control character {bad!r} is not allowed in a file name"
    if PureWindowsPath(name).anchor:
        return "a drive name (as in 'C:') is not allowed in a file name"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"a file name is at most {MAX_NAME_BYTES} bytes long"
    return None


def child_path(root: str | Path, name: str, what: str, error: type[Exception] = UnsafeNameError) -> Path:
    """``root / name`` where ``name`` (from outside: ``what`` says which, e.g. "Zenodo record 1, file key")
    must be one plain file name whose path stays inside ``root``, symlinks followed; else ``error`` naming
    ``what`` and the name. Nothing is created or written."""
    problem = name_problem(name)
    path = Path(root) / name if problem is None else None
    if path is not None and not inside(root, path):
        problem = f"it leads outside {root} (through a symbolic link)"
    if problem is not None:
        raise error(f"{what} {quoted(name)}: {problem}; refused")
    return path


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Write ``path`` whole or not at all: yields a binary file that is a temporary file unique to this writer
    in the same folder; on success it is flushed to disk and renamed over ``path`` (so a reader sees the old or
    the new file, never part of one, and concurrent writers never share a temporary file); on any failure it is
    removed and ``path`` is left as it was. Usable by anything that writes to a file object (``np.savez``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """:func:`atomic_file` for bytes in hand."""
    with atomic_file(path) as out:
        out.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def replace_text_locked(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_text` under the file's own lock (a hidden ``.<name>.lock`` beside it), first removing the temporary files that
    a writer killed mid-write left beside it: while the lock is held no live writer of that file owns one."""
    from filelock import FileLock

    path = Path(path)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        return atomic_write_text(path, text)


def _umask() -> int:
    """The process umask, read from /proc where there is one (setting it to read it races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def inside(root: str | Path, path: str | Path) -> bool:
    """True when ``path`` is ``root`` or below it once symbolic links and ``..`` are resolved (for paths that
    come from a pattern or a card rather than one name: check each match)."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root

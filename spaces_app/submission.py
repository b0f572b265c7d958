"""Checks on an uploaded results file before it is stored: nothing from a submission is executed or rendered."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

from leaderboard_data import KNOWN_TASKS

MAX_BYTES = 1_000_000
SAFE_TEXT = re.compile(r"^[A-Za-z0-9 _.,:;/()\[\]+=@#%~-]{1,200}$")  # no markup characters at all


class SubmissionError(ValueError):
    """The file is refused; the message says why."""


def _text(value, field: str) -> str:
    if not isinstance(value, str) or not SAFE_TEXT.match(value):
        raise SubmissionError(f"{field} must be 1-200 plain characters (letters, digits, spaces and . , : ; / ( ) [ ] + = @ # % ~ - _), got {str(value)[:60]!r}")
    return value


def validate(raw: bytes) -> dict:
    """The parsed results if the file is an acceptable xares-hf results file, else :class:`SubmissionError`."""
    if len(raw) > MAX_BYTES:
        raise SubmissionError(f"file is {len(raw)} bytes; the limit is {MAX_BYTES}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SubmissionError(f"not a JSON file: {err}") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise SubmissionError("not an xares-hf results file of schema_version 1 (results.json from xares_hf.evaluate)")
    encoder = data.get("encoder")
    if not isinstance(encoder, dict):
        raise SubmissionError("missing 'encoder'")
    _text(encoder.get("id"), "encoder.id")
    if encoder.get("reference"):
        raise SubmissionError("submissions cannot be marked as reference rows")
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks or len(tasks) > len(KNOWN_TASKS):
        raise SubmissionError("'tasks' must be a non-empty list of task results")
    seen = set()
    for task in tasks:
        name = task.get("name") if isinstance(task, dict) else None
        if name not in KNOWN_TASKS:
            raise SubmissionError(f"unknown task {str(name)[:60]!r}")
        if name in seen:
            raise SubmissionError(f"task {name!r} appears twice")
        seen.add(name)
        _text(task.get("formal_name", name), f"tasks[{name}].formal_name")
        for field in ("mlp", "mlp_score", "knn", "knn_score"):
            value = task.get(field)
            if field.startswith("mlp") and value is None:
                raise SubmissionError(f"task {name!r}: '{field}' is missing")
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not 0 <= value <= 1):
                raise SubmissionError(f"task {name!r}: '{field}' = {value!r} is not a score between 0 and 1")
        if not isinstance(task.get("eval_weight"), (int, float)) or task["eval_weight"] < 0:
            raise SubmissionError(f"task {name!r}: 'eval_weight' must be a non-negative number")
    return data


def store(data: dict, folder: str | Path) -> Path:
    """Write an accepted submission under a name derived from the encoder id and the time.

    Atomically: the JSON goes to a temporary file in the same folder (a dot-name ending in ``.tmp``, which the
    leaderboard's ``*.json`` glob never reads), is flushed to disk, then renamed into place with ``os.replace``,
    so a reader sees either no file or the whole file, never a partial one; a failed write leaves nothing behind.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", data["encoder"]["id"])[:80]
    path = folder / f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6:06d}.json"
    text = json.dumps(data, indent=1)
    handle, tmp = tempfile.mkstemp(prefix=f".{stem}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the stored file is as readable as before
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

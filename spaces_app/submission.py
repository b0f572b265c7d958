"""The Space's one schema for results files: uploads and the files it has stored are checked by the same :func:`check`.

Nothing from a results file is executed or rendered. Every field the leaderboard uses is type-checked (pydantic,
strict: no coercion), every string it shows is plain text, every number is finite, every task is a known task with
its known facts, and every derived number (normalised scores, means and spreads over seeds, averages) is recomputed
from the raw values and must agree with the stored one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import statistics
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

import averages
import names

HERE = Path(__file__).resolve().parent
KNOWN_TASKS: dict[str, dict] = json.loads((HERE / "known_tasks.json").read_text())
# the results file's structure, exported from xares-hf's own models (xares_hf/results_schema.py): one schema for both
RESULTS_SCHEMA: dict = json.loads((HERE / "results.schema.json").read_text())
MAX_BYTES = 1_000_000
SCHEMA_VERSION = 1  # the results files this Space reads (xares_hf.results.SCHEMA_VERSION; a test checks they agree)
# the scoring protocols (xares_hf/protocols.py owns them; tests/test_leaderboard_app.py checks that the two agree):
# numbers of different protocols are different measurements and are never ranked together
PROTOCOLS = ("xares-hf", "xares-0.1.3")
DEFAULT_PROTOCOL = "xares-hf"
MAX_DEPTH = 32  # xares-hf's results files nest 6 levels deep
TOLERANCE = 1e-6  # a stored derived number may differ this much from the recomputed one (float rounding)
SAFE_TEXT = re.compile(r"[A-Za-z0-9 _.,:;/()+=@#%~-]{1,200}")  # one line, no markup characters (no < > [ ] ` * | ...)


class SubmissionError(ValueError):
    """The file is refused; the message says why."""


# ----------------------------------------------------------------------------- field types


def _text(value: str) -> str:
    if not SAFE_TEXT.fullmatch(value):
        raise ValueError(f"must be 1-200 plain characters (letters, digits, spaces and . , : ; / ( ) + = @ # % ~ - _), got {value[:60]!r}")
    return value


def _score(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"= {value!r} is not a score between 0 and 1")
    return value


def _layer(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"must be a layer index or a layer mode's name, got {type(value).__name__} {str(value)[:60]!r}")
    return value


def _iso_date(value: str) -> str:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be an ISO 8601 date, got {value[:60]!r}") from None
    return value


Text = Annotated[str, AfterValidator(_text)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Score = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_score)]
Layer = Annotated[Any, AfterValidator(_layer)]
LayerKey = Annotated[str, Field(pattern=r"^[0-9]{1,4}$")]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")  # fields the app does not use are kept, never shown


class SeedRun(_Model):
    seed: int
    mlp: Score
    mlp_score: Score
    knn: Score | None = None
    knn_score: Score | None = None


class LayerPoint(_Model):
    mlp: Score
    mlp_score: Score
    valid: Finite | None = None


class TaskScores(_Model):
    name: str
    formal_name: Text
    domain: Text
    task_type: Text
    metric: Text
    mlp: Score
    mlp_score: Score
    knn: Score | None = None
    knn_score: Score | None = None
    eval_weight: NonNegative
    eval_size: Annotated[int, Field(ge=0)] = 0
    seed: int = 0
    mlp_std: NonNegative | None = None
    knn_std: NonNegative | None = None
    seed_runs: list[SeedRun] = []
    layer: Layer = None
    layer_profile: dict[LayerKey, LayerPoint] = {}
    layer_weights: list[NonNegative] | None = None


class Encoder(_Model):
    id: Text
    revision: Text | None = None
    layer: Layer = None
    reference: bool = False


class RunInfo(_Model):
    protocol: Literal[PROTOCOLS] = DEFAULT_PROTOCOL  # files written before the protocol was recorded: xares-hf's


class ResultsFile(_Model):
    schema_version: Literal[SCHEMA_VERSION]
    xares_hf_version: Text
    created: Annotated[Text, AfterValidator(_iso_date)]
    encoder: Encoder
    averages: dict[Literal["mlp", "knn", "mlp_std", "knn_std"], Finite | None] = {}
    run: RunInfo = RunInfo()
    tasks: Annotated[list[TaskScores], Field(min_length=1, max_length=len(KNOWN_TASKS))]


# ----------------------------------------------------------------------------- scores, by the xares_score module


@lru_cache(maxsize=1)
def xares_score():
    """X-ARES' published ``xares_score`` evaluate module (the repo's copy when present)."""
    import evaluate

    local = HERE.parent / "metrics" / "xares_score"
    # in memory: an evaluate module's default cache file is locked per computation, so two page events computing at
    # once (Gradio runs them in threads) failed with "another evaluation module instance is already using the local
    # cache file"
    return evaluate.load(str(local) if local.is_dir() else "xares/xares_score", keep_in_memory=True)


_SCORE_LOCK = threading.Lock()  # one module instance holds one computation's inputs at a time


def _score(scores: list[float], weights: list[float]) -> dict:
    with _SCORE_LOCK:
        return xares_score().compute(scores=scores, weights=weights)


def normalise(values: list[float]) -> list[float]:
    """Each raw metric value's 0-1 score, as xares_score computes it (every X-ARES metric lies in 0-1: its default bounds)."""
    return _score(values, [1.0] * len(values))["normalised_scores"] if values else []


def _compute(scores: list[float], weights: list[float]) -> dict:
    return _score(scores, weights)


def weighted_average(scores: list[float | None], weights: list[float]) -> float | None:
    """X-ARES' weighted mean of normalised scores (``averages.py``, the package's own); None when nothing counts."""
    return averages.weighted_average(scores, weights, _compute)


def seed_spread(tasks: list[dict], probe: str = "mlp") -> float | None:
    """Sample standard deviation over seeds of the weighted average of these tasks (None without >= 2 seeds each)."""
    tasks = [t for t in tasks if t.get(f"{probe}_score") is not None]
    counts = {len(t.get("seed_runs") or []) for t in tasks}
    if not tasks or len(counts) != 1 or counts.pop() < 2:
        return None
    per_seed = [[t["seed_runs"][i][f"{probe}_score"] for t in tasks] for i in range(len(tasks[0]["seed_runs"]))]
    return averages.seed_spread(per_seed, [t.get("eval_weight") or 0 for t in tasks], _compute)


# ----------------------------------------------------------------------------- parsing and checking


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise SubmissionError(f"key {next(k for k in keys if keys.count(k) > 1)[:60]!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise SubmissionError(f"{name} is not a JSON number (scores must be finite)")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse(raw: bytes) -> Any:
    """The JSON in a file of at most MAX_BYTES, nested at most MAX_DEPTH deep, without NaN, Infinity or repeated keys."""
    if len(raw) > MAX_BYTES:
        raise SubmissionError(f"file is {len(raw)} bytes; the limit is {MAX_BYTES}")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise SubmissionError(f"JSON nested more deeply than {MAX_DEPTH} levels") from None
    except SubmissionError:
        raise
    except (UnicodeDecodeError, ValueError) as err:
        raise SubmissionError(f"not a JSON file: {err}") from None
    if _depth(data) > MAX_DEPTH:
        raise SubmissionError(f"JSON nested more deeply than {MAX_DEPTH} levels")
    return data


def _where(loc: tuple, data: Any) -> str:
    out = ""
    for i, part in enumerate(loc):
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
        if i == 1 and loc[0] == "tasks" and isinstance(part, int) and isinstance(data, dict):
            task = data["tasks"][part] if isinstance(data.get("tasks"), list) and part < len(data["tasks"]) else None
            name = task.get("name") if isinstance(task, dict) else None
            out += f" ({name[:60]!r})" if isinstance(name, str) else ""
    return out or "top level"


def _one_line(err: ValidationError, data: Any) -> str:
    errors = err.errors()
    e = next((e for e in errors if e["type"] == "value_error"), errors[0])
    where = _where(e["loc"], data)
    if e["type"] == "value_error":
        return f"{where} {e['msg'].removeprefix('Value error, ')}"
    if e["type"] == "missing":
        return f"{where} is missing"
    return f"{where}: {e['msg'][0].lower()}{e['msg'][1:]}, got {str(e.get('input'))[:60]!r}"


def _near(a: float | None, b: float | None) -> bool:
    return (a is None) == (b is None) and (a is None or abs(a - b) <= TOLERANCE)


def _consistent(results: ResultsFile) -> None:
    """Known tasks with their known facts; every derived number recomputed from the raw ones."""
    seen: set[str] = set()
    derived: list[tuple[str, str, float, float]] = []  # (task, field, raw value, stored score)
    for t in results.tasks:
        known = KNOWN_TASKS.get(t.name)
        if known is None:
            raise SubmissionError(f"unknown task {t.name[:60]!r}")
        if t.name in seen:
            raise SubmissionError(f"task {t.name!r} appears twice")
        seen.add(t.name)
        for field in ("formal_name", "domain", "task_type", "metric", "eval_weight"):
            if known[field] is not None and getattr(t, field) != known[field]:
                raise SubmissionError(f"task {t.name!r}: {field} is {getattr(t, field)!r}, the task's is {known[field]!r}")
        if (t.knn is None) != (t.knn_score is None):
            raise SubmissionError(f"task {t.name!r}: knn and knn_score must both be given or both be null")
        derived += [(t.name, "mlp_score", t.mlp, t.mlp_score)] + ([(t.name, "knn_score", t.knn, t.knn_score)] if t.knn is not None else [])
        for i, run in enumerate(t.seed_runs):
            if (run.knn is None) != (t.knn is None) or (run.knn is None) != (run.knn_score is None):
                raise SubmissionError(f"task {t.name!r}: seed_runs[{i}] must have a knn and knn_score exactly when the task has a knn")
            derived += [(t.name, f"seed_runs[{i}].mlp_score", run.mlp, run.mlp_score)]
            derived += [(t.name, f"seed_runs[{i}].knn_score", run.knn, run.knn_score)] if run.knn is not None else []
        derived += [(t.name, f"layer_profile.{k}.mlp_score", p.mlp, p.mlp_score) for k, p in t.layer_profile.items()]
        _check_seeds(t)
        _check_layers(t)
    for (task, field, raw, stored), recomputed in zip(derived, normalise([d[2] for d in derived])):
        if not _near(stored, recomputed):
            raise SubmissionError(f"task {task!r}: {field} is {stored!r}, but its raw value {raw!r} normalises to {recomputed!r}")
    tasks = [t.model_dump() for t in results.tasks]
    recomputed = {
        "mlp": weighted_average([t["mlp_score"] for t in tasks], [t["eval_weight"] for t in tasks]),
        "knn": weighted_average([t["knn_score"] for t in tasks], [t["eval_weight"] for t in tasks]),
        "mlp_std": seed_spread(tasks, "mlp"), "knn_std": seed_spread(tasks, "knn"),
    }
    for key, stored in results.averages.items():
        if not _near(stored, recomputed[key]):
            raise SubmissionError(f"averages.{key} is {stored!r}, but the tasks' scores give {recomputed[key]!r}")


def _check_seeds(t: TaskScores) -> None:
    if len(t.seed_runs) == 1:
        raise SubmissionError(f"task {t.name!r}: seed_runs lists one seed; runs with one seed list none")
    for probe in ("mlp", "knn"):
        values = [getattr(r, probe) for r in t.seed_runs]
        mean, std = (statistics.fmean(values), statistics.stdev(values)) if values and None not in values else (None, None)
        if values and mean is not None and not _near(getattr(t, probe), mean):
            raise SubmissionError(f"task {t.name!r}: {probe} is {getattr(t, probe)!r}, but its seed_runs average {mean!r}")
        if not _near(getattr(t, f"{probe}_std"), std):
            raise SubmissionError(f"task {t.name!r}: {probe}_std is {getattr(t, f'{probe}_std')!r}, but its seed_runs give {std!r}")


def _check_layers(t: TaskScores) -> None:
    if t.layer_profile:
        point = t.layer_profile.get(str(t.layer))
        if point is None or not _near(point.mlp, t.mlp):
            raise SubmissionError(f"task {t.name!r}: layer {t.layer!r} is not the layer_profile's entry with the task's mlp {t.mlp!r}")
    if t.layer_weights is not None and not (t.layer_weights and abs(sum(t.layer_weights) - 1) <= 1e-3):
        raise SubmissionError(f"task {t.name!r}: layer_weights must be softmax weights (summing to 1), got sum {sum(t.layer_weights)!r}")


def check(data: Any) -> dict:
    """``data`` if it is an xares-hf results file the leaderboard can show as it is, else :class:`SubmissionError`.

    The one check of the Space: uploads (:func:`validate`) and stored files (``leaderboard_data.load_runs``) alike."""
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise SubmissionError(f"not an xares-hf results file of schema_version {SCHEMA_VERSION} (results.json from xares_hf.evaluate)")
    try:
        results = ResultsFile.model_validate(data)  # what the page shows: plain text, scores in 0-1, known tasks
    except ValidationError as err:
        raise SubmissionError(_one_line(err, data)) from None
    _schema_check(data)
    _consistent(results)
    return data


@lru_cache(maxsize=1)
def _schema_validator():
    import jsonschema

    return jsonschema.Draft202012Validator(RESULTS_SCHEMA)


def _schema_check(data: dict) -> None:
    """The file against the shipped results schema (xares-hf's): no unknown or missing field, JSON types."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_schema_validator().iter_errors(data))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "top level"
        raise SubmissionError(f"{where}: {error.message[:200]} (the results schema of xares-hf)")


def validate(raw: bytes) -> dict:
    """The parsed results if an uploaded file is an acceptable xares-hf results file, else :class:`SubmissionError`."""
    data = check(parse(raw))
    if data["encoder"].get("reference"):
        raise SubmissionError("submissions cannot be marked as reference rows")
    return data


def store(data: dict, folder: str | Path) -> Path:
    """Write an accepted submission under a name derived from the encoder id and the time.

    Atomically: the JSON goes to a temporary file in the same folder (a dot-name ending in ``.tmp``, which the
    leaderboard's ``*.json`` glob never reads), is flushed to disk, then renamed into place with ``os.replace``,
    so a reader sees either no file or the whole file, never a partial one; a failed write leaves nothing behind.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = names.safe_component(data["encoder"]["id"])
    path = folder / f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(6)}.json"  # never another upload's name
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

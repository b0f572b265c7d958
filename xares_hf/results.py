"""Benchmark results: per-task scores, the weighted averages, a printable table and a versioned JSON file."""

from __future__ import annotations

import datetime as _dt
import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .messages import one_line, quoted
from .paths import child_path, replace_text_locked, safe_component
from . import results_schema
from .protocols import DEFAULT as DEFAULT_PROTOCOL
from .results_schema import SCHEMA_VERSION
from .leaderboard_app.averages import seed_spread, weighted_average
from .scoring import METRICS, aggregate, xares_score_compute
from .task_types import KNN_METRIC, TASK_TYPES
from .version import __version__

MAX_DEPTH = 32  # JSON nesting a results file may have (it needs 5); deeper is refused before any recursion
SCORE_TOLERANCE = 1e-6  # how far a stored derived number may be from the one recomputed from the raw values


@dataclass
class TaskResult:
    """One task's scores for one encoder: raw metric values and their 0-1 normalised scores."""

    name: str
    formal_name: str
    domain: str
    task_type: str
    metric: str
    mlp: float
    mlp_score: float
    knn: float | None
    knn_score: float | None
    eval_weight: float
    eval_size: int
    seed: int  # the first seed; with several, the others follow it (seed + 1, ...)
    folds: dict[str, dict[str, float]] = field(default_factory=dict)
    encoded: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the ASR head and decoder, the tokenizer used
    skipped: list[dict[str, Any]] = field(default_factory=list)  # bad samples left out (on_bad_sample="skip"): split, file, key, reason
    left_out: list[dict[str, Any]] = field(default_factory=list)  # not scored though not bad (both modes): split, file, key, reason
    mlp_std: float | None = None  # sample standard deviation over seeds (seeds > 1); mlp is then their mean
    knn_std: float | None = None
    seed_runs: list[dict[str, float | None]] = field(default_factory=list)  # per seed: seed, mlp(_score), knn(_score)
    layer: int | str | None = None  # layer="all": the layer picked by validation score; "weighted": "weighted"
    layer_profile: dict[str, dict[str, float]] = field(default_factory=dict)  # layer="all": per layer mlp, mlp_score, valid
    layer_weights: list[float] | None = None  # layer="weighted": the learnt softmax weights, embedding output first


@dataclass
class Results:
    """All task results for one encoder, with X-ARES' weighted averages for MLP and k-NN."""

    encoder: dict[str, Any]
    tasks: list[TaskResult]
    xares_hf_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    averages: dict[str, float | None] | None = None
    run: dict[str, Any] = field(default_factory=dict)  # world size, mixed precision, device, protocol, ...

    def __post_init__(self) -> None:
        if self.averages is None:  # X-ARES' weighted averages: the function the Space uses too
            weights = [t.eval_weight for t in self.tasks]
            self.averages = {
                "mlp": weighted_average([t.mlp_score for t in self.tasks], weights, xares_score_compute),
                "knn": weighted_average([t.knn_score for t in self.tasks], weights, xares_score_compute),
            }
            self.averages.update(self._seed_spread())

    def _seed_spread(self) -> dict[str, float]:
        """With several seeds: the sample standard deviation over seeds of the weighted averages."""
        runs = [t.seed_runs for t in self.tasks]
        if not runs or len(runs[0]) < 2 or any(len(r) != len(runs[0]) for r in runs):
            return {}
        spread = {}
        weights = [t.eval_weight for t in self.tasks]
        for probe in ("mlp", "knn"):
            if any(t.seed_runs[0][probe] is not None for t in self.tasks):
                per_seed = [[t.seed_runs[i][f"{probe}_score"] for t in self.tasks] for i in range(len(runs[0]))]
                value = seed_spread(per_seed, weights, xares_score_compute)
                if value is not None:
                    spread[f"{probe}_std"] = float(value)
        return spread

    @property
    def protocol(self) -> str:
        """The scoring protocol of these numbers (``run.protocol``; files from before it was recorded: xares-hf)."""
        return str(self.run.get("protocol", DEFAULT_PROTOCOL))

    @property
    def mlp_average(self) -> float | None:
        return self.averages["mlp"]

    @property
    def knn_average(self) -> float | None:
        return self.averages["knn"]

    def __getitem__(self, task: str) -> TaskResult:
        for t in self.tasks:
            if t.name == task:
                return t
        raise KeyError(f"no result for task '{task}'")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "xares_hf_version": self.xares_hf_version,
            "created": self.created,
            "encoder": self.encoder,
            "run": self.run,
            "averages": dict(self.averages),
            "tasks": [asdict(t) for t in self.tasks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "results") -> "Results":
        """Results from their JSON form, checked against the schema first (:func:`validate_results`)."""
        validate_results(data, source)
        return cls(
            encoder=data["encoder"],
            tasks=[TaskResult(**t) for t in data["tasks"]],
            xares_hf_version=data["xares_hf_version"],
            schema_version=data["schema_version"],
            created=data["created"],
            averages=data["averages"],
            run=data.get("run", {}),
        )

    def save(self, output_dir: str | Path) -> Path:
        """Write ``<output_dir>/<encoder id>[__layer-<layer>]/results.json`` (written whole under a temporary name
        unique to this writer, then renamed into place, so concurrent saves never meet).

        The folder name is :func:`~xares_hf.paths.safe_component` of the id (``org/model`` -> ``org__model``;
        other ids keep their safe characters plus a hash), so different encoders or layers never share a folder."""
        folder = child_path(output_dir, _folder_name(self.encoder, self.protocol), "results folder")
        folder.mkdir(parents=True, exist_ok=True)
        return replace_text_locked(folder / "results.json", json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        """Read a ``results.json``; a file that is not valid UTF-8 JSON of this schema raises ``ValueError``
        naming the file and the field. Nothing in the file is evaluated: it is parsed as JSON and type-checked."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"results file {path}: not valid UTF-8 ({err})") from None
        depth = _nesting(text)
        if depth > MAX_DEPTH:
            raise ValueError(f"results file {path}: JSON nested {depth} levels deep; a results file has at most {MAX_DEPTH}")
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except (ValueError, RecursionError) as err:
            raise ValueError(f"results file {path}: not valid JSON ({one_line(err)})") from None
        return cls.from_dict(data, source=f"results file {path}")

    def to_pandas(self):
        """One row per task (name, domain, metric, MLP and k-NN values and scores, weight, size)."""
        import pandas as pd

        rows = [
            {k: v for k, v in asdict(t).items() if k not in ("folds", "timings", "details")} for t in self.tasks
        ]
        return pd.DataFrame(rows).set_index("name")

    def __str__(self) -> str:
        head = f"xares-hf {self.xares_hf_version} | encoder {self.encoder.get('id')}"
        if self.encoder.get("layer") is not None:
            head += f" (layer {self.encoder['layer']})"
        head += f" | protocol {self.protocol}"
        rows = [("Task", "Domain", "Metric", "MLP", "kNN", "Weight")]
        for t in self.tasks:
            name = t.formal_name + (f" [layer {t.layer}]" if isinstance(t.layer, int) else "")
            rows.append((name, t.domain, t.metric, _fmt(t.mlp_score, _score_std(t, "mlp")),
                         _fmt(t.knn_score, _score_std(t, "knn")), f"{t.eval_weight:g}"))
        rows.append(("Weighted average", "", "", _fmt(self.mlp_average, self.averages.get("mlp_std")),
                     _fmt(self.knn_average, self.averages.get("knn_std")), ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
            if i == 0 or i == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.to_pandas()._repr_html_()


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


def _nesting(text: str) -> int:
    """How deeply the JSON text nests arrays and objects, counted without parsing (brackets inside strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def validate_results(data: Any, source: str = "results") -> None:
    """Raise ``ValueError`` naming ``source`` and the field unless ``data`` is a results dict of this schema.

    The structure (known fields only, JSON types, finite numbers) is :mod:`.results_schema`'s, made from the
    :class:`Results` and :class:`TaskResult` fields; then what types cannot say (:func:`_check_meaning`)."""
    results_schema.check(data, source)
    encoder = data["encoder"]
    if not isinstance(encoder.get("id"), str):
        raise ValueError(f"{source}: field 'encoder.id' must be a string, got {quoted(encoder.get('id'))}")
    _check_meaning(data, source)


_SHOWN_TASK_TEXT = ("name", "formal_name", "domain", "task_type", "metric")


def _plain(value: Any, where: str, source: str) -> None:
    """A name that is shown or published: one line, no control, format or line-separator characters."""
    if value is None or isinstance(value, (int, float)):
        return
    bad = next((c for c in str(value) if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None or value == "":
        what = f"holds the control character {bad!r}" if bad is not None else "is empty"
        raise ValueError(f"{source}: field '{where}' {what} ({quoted(value)}); names are one line of plain text")


def _check_meaning(data: dict, source: str) -> None:
    """What the types cannot say: names are plain text, metrics and task types known, weights non-negative, each
    task once, and every derived number (normalised scores, seed means and spreads, averages) equal to the one
    recomputed from the raw values, so a forged score in a file can never rank."""
    for key in ("id", "revision", "layer"):
        _plain(data["encoder"].get(key), f"encoder.{key}", source)
    _plain(data["created"], "created", source)
    _plain(data["xares_hf_version"], "xares_hf_version", source)
    seen: set[str] = set()
    for i, t in enumerate(data["tasks"]):
        where = f"tasks[{i}]"
        for key in _SHOWN_TASK_TEXT:
            _plain(t[key], f"{where}.{key}", source)
        if t["name"] in seen:
            raise ValueError(f"{source}: field '{where}.name': task {t['name']!r} appears twice")
        seen.add(t["name"])
        if t["metric"] not in METRICS:
            raise ValueError(f"{source}: field '{where}.metric' = {quoted(t['metric'])} is not a known metric ({', '.join(METRICS)})")
        if t["task_type"] not in TASK_TYPES:
            raise ValueError(f"{source}: field '{where}.task_type' = {quoted(t['task_type'])} is not a known task type")
        if t["eval_weight"] < 0:
            raise ValueError(f"{source}: field '{where}.eval_weight' must not be negative, got {t['eval_weight']!r}")
        _check_derived(t, where, source)
    fresh = Results(encoder=data["encoder"], tasks=[TaskResult(**t) for t in data["tasks"]]).averages
    for key, stored in data["averages"].items():
        _same(stored, fresh.get(key), f"averages.{key}", "the tasks' values", source)


def _check_derived(t: dict, where: str, source: str) -> None:
    """A task's normalised scores, and with several seeds its means and spreads, against its raw values."""
    runs = t.get("seed_runs") or []
    if len(runs) == 1:
        raise ValueError(f"{source}: field '{where}.seed_runs' has one run; it is empty for one seed and lists every seed otherwise")
    raw = [(t["metric"], t["mlp"], "mlp_score", t), (KNN_METRIC, t["knn"], "knn_score", t)]
    raw += [(m, r.get(p), f"{p}_score", r) for r in runs for m, p in ((t["metric"], "mlp"), (KNN_METRIC, "knn"))]
    values = [(metric, value) for metric, value, _, _ in raw if value is not None]
    scores = iter(aggregate([v for _, v in values], [1.0] * len(values), [m for m, _ in values])[0])
    for metric, value, key, holder in raw:
        label = f"{where}.{key}" if holder is t else f"{where}.seed_runs[{runs.index(holder)}].{key}"
        _same(holder.get(key), None if value is None else next(scores), label, f"{metric} {value!r}", source)
    for probe in ("mlp", "knn"):
        values = [r.get(probe) for r in runs]
        if runs and None not in values:
            _same(t[probe], float(np.mean(values)), f"{where}.{probe}", "the mean of its seed runs", source)
            _same(t.get(f"{probe}_std"), float(np.std(values, ddof=1)), f"{where}.{probe}_std", "its seed runs", source)


def _same(stored: Any, recomputed: float | None, where: str, basis: str, source: str) -> None:
    if (stored is None) != (recomputed is None) or (stored is not None and abs(stored - recomputed) > SCORE_TOLERANCE):
        raise ValueError(f"{source}: field '{where}' is {quoted(stored)}, but recomputed from {basis} it is {quoted(recomputed)}")


def _fmt(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if std is None else f"{value:.3f} ± {std:.3f}"


def _score_std(task: TaskResult, probe: str) -> float | None:
    """Standard deviation over seeds of a task's normalised score (None for one seed)."""
    scores = [r.get(f"{probe}_score") for r in task.seed_runs]
    if len(scores) < 2 or None in scores:
        return None
    return float(np.std(scores, ddof=1))


PROTOCOL_TAG = "__protocol-"  # runs of one model under another protocol than the default
LAYER_TAG = "__layer-"  # runs of one model at different layers (or layer modes) go to different folders


def _folder_name(encoder: dict[str, Any], protocol: str = DEFAULT_PROTOCOL) -> str:
    """The results folder of an encoder (and layer, and a protocol other than the default): one plain name,
    different for every id, layer and protocol, so a run of one protocol never overwrites another's."""
    reserved = (LAYER_TAG, PROTOCOL_TAG)
    name = safe_component(str(encoder.get("id", "encoder")), reserved=reserved)
    layer = encoder.get("layer")
    if layer is not None:
        tag = str(layer) if isinstance(layer, int) and not isinstance(layer, bool) else safe_component(str(layer), reserved=reserved)
        name += LAYER_TAG + tag
    if protocol != DEFAULT_PROTOCOL:
        name += PROTOCOL_TAG + safe_component(protocol, reserved=reserved)
    return name


def leaderboard(runs: list[Results]) -> str:
    """Encoders side by side: one row per task (normalised MLP score, kNN in brackets), averages last. A run of
    another protocol than the default is marked in its column's name, and a first line says when protocols mix."""
    names = [str(r.encoder.get("id")) + ("" if r.protocol == DEFAULT_PROTOCOL else f" [{r.protocol}]") for r in runs]
    tasks: dict[str, str] = {}
    for r in runs:
        for t in r.tasks:
            tasks.setdefault(t.name, t.formal_name)
    rows = [("Task", *names)]
    for name, formal in tasks.items():
        cells = []
        for r in runs:
            found = next((t for t in r.tasks if t.name == name), None)
            cells.append("-" if found is None else f"{found.mlp_score:.3f}" + ("" if found.knn_score is None else f" ({found.knn_score:.3f})"))
        rows.append((formal, *cells))
    rows.append(("Weighted average MLP", *[_fmt(r.mlp_average) for r in runs]))
    rows.append(("Weighted average kNN", *[_fmt(r.knn_average) for r in runs]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0 or i == len(rows) - 3:
            lines.append("  ".join("-" * w for w in widths))
    protocols = sorted({r.protocol for r in runs})
    if len(protocols) > 1:
        lines.insert(0, f"protocols differ ({', '.join(protocols)}): their numbers are different measurements, not a ranking")
    return "\n".join(lines)

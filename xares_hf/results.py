"""Benchmark results: per-task scores, the weighted averages, a printable table and a versioned JSON file."""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .scoring import aggregate
from .version import __version__

SCHEMA_VERSION = 1


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
    seed: int
    folds: dict[str, dict[str, float]] = field(default_factory=dict)
    encoded: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the ASR head and decoder, the tokenizer used


@dataclass
class Results:
    """All task results for one encoder, with X-ARES' weighted averages for MLP and k-NN."""

    encoder: dict[str, Any]
    tasks: list[TaskResult]
    xares_hf_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    averages: dict[str, float | None] | None = None
    run: dict[str, Any] = field(default_factory=dict)  # world size, mixed precision, device

    def __post_init__(self) -> None:
        if self.averages is None:  # X-ARES' weighted averages, by the xares_score module
            mlp = self.tasks
            knn = [t for t in self.tasks if t.knn is not None]
            self.averages = {
                "mlp": aggregate([t.mlp for t in mlp], [t.eval_weight for t in mlp], [t.metric for t in mlp])[1],
                "knn": aggregate([t.knn for t in knn], [t.eval_weight for t in knn], ["accuracy"] * len(knn))[1],
            }

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
    def from_dict(cls, data: dict[str, Any]) -> "Results":
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"results schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}")
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
        """Write ``<output_dir>/<encoder id>/results.json`` (written whole, then renamed into place)."""
        folder = Path(output_dir) / safe_name(str(self.encoder.get("id", "encoder")))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        return cls.from_dict(json.loads(Path(path).read_text()))

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
        rows = [("Task", "Domain", "Metric", "MLP", "kNN", "Weight")]
        for t in self.tasks:
            rows.append(
                (t.formal_name, t.domain, t.metric, f"{t.mlp_score:.3f}", _fmt(t.knn_score), f"{t.eval_weight:g}")
            )
        rows.append(("Weighted average", "", "", _fmt(self.mlp_average), _fmt(self.knn_average), ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
            if i == 0 or i == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.to_pandas()._repr_html_()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def safe_name(text: str) -> str:
    """A file-system-safe folder name for an encoder id (``org/model`` -> ``org__model``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("/", "__")).strip("_") or "encoder"


def leaderboard(runs: list[Results]) -> str:
    """Encoders side by side: one row per task (normalised MLP score, kNN in brackets), averages last."""
    names = [str(r.encoder.get("id")) for r in runs]
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
    return "\n".join(lines)

"""Results files -> leaderboard tables: one row per run, normalised scores per task, weighted averages.

Self-contained (the Space does not install xares-hf): it reads the versioned results JSON that xares-hf
writes, checked by the Space's one schema (``submission.check``), and averages with the published
`xares_score` evaluate module, as xares-hf itself does. A stored file that does not pass is skipped and
reported, never allowed to stop the app.

Rows of different protocols (``run.protocol``: ``xares-hf`` or ``xares-0.1.3``, see ``submission.PROTOCOLS``) are
different measurements: a table shows one protocol. A run that lacks some of the tasks in view is marked
incomplete and listed after every complete run, whatever the sort key.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

import submission
from submission import DEFAULT_PROTOCOL, HERE, KNOWN_TASKS, PROTOCOLS, weighted_average  # noqa: F401  (one owner each: the schema module)

DOMAINS = ("speech", "sound", "music")
log = logging.getLogger("xares-leaderboard")


@dataclass
class Run:
    """One results file: an encoder's scores on some tasks."""

    model: str
    reference: bool
    data: dict
    source: str
    protocol: str = DEFAULT_PROTOCOL
    paper_tasks: int = 0  # > 0: a row of published averages only (the paper's Table 2), over this many tasks

    def score(self, task: str, probe: str) -> float | None:
        for t in self.data["tasks"]:
            if t["name"] == task:
                return t.get(f"{probe}_score")
        return None


@lru_cache(maxsize=4096)
def _load_one(path: str, label: str, mtime_ns: int, size: int) -> Run | str:
    """One stored file as a run, or the line saying why it is skipped (checked and logged once per version of it)."""
    try:
        with open(path, "rb") as handle:
            data = submission.check(submission.parse(handle.read(submission.MAX_BYTES + 1)))
    except (OSError, submission.SubmissionError) as err:
        reason = f"{label}: {err}"
    except Exception as err:  # a file on disk must never stop the app, whatever is wrong with it
        log.exception("stored results file %s could not be checked", ascii(path))
        reason = f"{label}: could not be checked ({type(err).__name__}: {err})"
    else:
        encoder = data["encoder"]
        protocol = data.get("run", {}).get("protocol", DEFAULT_PROTOCOL)
        name = encoder["id"] + (f" (layer {encoder['layer']})" if encoder.get("layer") is not None else "")  # other rows
        if protocol != DEFAULT_PROTOCOL and not encoder.get("reference"):
            name += f" [{protocol}]"
        return Run(name, bool(encoder.get("reference")), data, path, protocol)
    log.warning("skipped stored results file %s", ascii(reason))
    return reason


def scan(*folders: str | Path) -> tuple[list[Run], list[str]]:
    """Every ``*.json`` results file under the folders that passes ``submission.check``, and one line per file that
    does not ("name: why"). Reference rows are marked by ``encoder.reference``."""
    runs: list[Run] = []
    skipped: list[str] = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.json")) if Path(folder).is_dir() else []:
            label = ascii(path.relative_to(folder).as_posix())[1:-1]
            try:
                stat = path.stat()
            except OSError as err:
                skipped.append(f"{label}: {err.strerror or err}")
                continue
            outcome = _load_one(str(path), label, stat.st_mtime_ns, stat.st_size)
            (runs if isinstance(outcome, Run) else skipped).append(outcome)
    return runs, skipped


def paper_runs(path: str | Path = HERE / "paper" / "table2.json") -> list[Run]:
    """The X-ARES paper's Table 2 as reference rows of averages only (no per-task numbers)."""
    table2 = json.loads(Path(path).read_text())
    return [Run(f"X-ARES paper, Table 2: {row['encoder']}", True,
                {"tasks": [], "averages": {"mlp": row["mlp"], "knn": row["knn"]}, "note": table2["note"]},
                str(path), table2["protocol"], int(table2["tasks"])) for row in table2["rows"]]


def load_runs(*folders: str | Path) -> list[Run]:
    """The runs of :func:`scan` (files that do not pass the checks are skipped and logged)."""
    return scan(*folders)[0]


def results_folder() -> Path:
    """Results from the Hub dataset repo ``$XARES_RESULTS_REPO`` when set and reachable, else the local folder."""
    local = Path(os.environ.get("XARES_RESULTS_DIR", HERE / "results"))
    repo = os.environ.get("XARES_RESULTS_REPO")
    if repo and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true"):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo, repo_type="dataset", allow_patterns=["*.json"]))
        except Exception:  # offline or unreachable: the local copy
            pass
    return local


def task_info(runs: list[Run]) -> dict[str, dict]:
    """Name -> formal name, domain, task type: the known tasks', else what the results files say."""
    info = {t["name"]: {k: t.get(k) for k in ("formal_name", "domain", "task_type")} for r in runs for t in r.data["tasks"]}
    info.update({n: v for n, v in KNOWN_TASKS.items()})
    return info


def task_columns(runs: list[Run], domains: list[str] | None = None, task_types: list[str] | None = None,
                 suite: str | None = None) -> list[str]:
    """Tasks any run has, grouped by domain, filtered by domain, task type and suite ('x-ares', 'xares-mini')."""
    present = {t["name"] for r in runs for t in r.data["tasks"]}
    names = [n for n in KNOWN_TASKS if n in present] + sorted(present - set(KNOWN_TASKS))
    info = task_info(runs)
    names = [n for n in names if (not domains or info[n].get("domain") in domains) and (not task_types or info[n].get("task_type") in task_types)]
    if suite:
        names = [n for n in names if KNOWN_TASKS.get(n, {}).get("suite", "other") == suite]
    return sorted(names, key=lambda n: DOMAINS.index(info[n]["domain"]) if info[n].get("domain") in DOMAINS else len(DOMAINS))


def _type(run: Run) -> str:
    if run.paper_tasks:
        return "reference (X-ARES paper, Table 2)"
    return "reference (xares 0.1.3 README)" if run.reference else "run"


def _paper_row(run: Run, probe: str, columns: list[str], info: dict, narrowed: bool) -> dict | None:
    """A Table 2 row (its average only), shown only when the view is the whole X-ARES task set it averages."""
    if narrowed or any(KNOWN_TASKS.get(n, {}).get("suite") != "x-ares" for n in columns):
        return None
    row = {"Model": run.model, "Type": _type(run), "Protocol": run.protocol, "Average": _round(run.data["averages"].get(probe))}
    row.update({f"{d.title()} avg": None for d in DOMAINS})
    row.update({"± seeds": None, "Tasks": f"{run.paper_tasks}/{run.paper_tasks} (paper)"})
    row.update({info[n].get("formal_name") or n: None for n in columns})
    return row


def table(runs: list[Run], probe: str = "mlp", domains=None, task_types=None, search: str = "", sort_by: str = "Average",
          suite: str | None = None, protocol: str | None = DEFAULT_PROTOCOL) -> pd.DataFrame:
    """The leaderboard of one protocol (``None``: every run, e.g. for plots): Model, Type, Protocol, averages
    (overall and per domain, over the tasks each run has), one column per task.

    Runs with none of the selected tasks are left out; runs missing some are marked incomplete and come after
    every complete run. The paper's Table 2 rows (averages only) appear when the view is all X-ARES tasks."""
    runs = [r for r in runs if protocol is None or r.protocol == protocol]
    columns = task_columns([r for r in runs if not r.paper_tasks], domains, task_types, suite)
    info = task_info(runs)
    narrowed = bool(domains and set(domains) != set(DOMAINS)) or bool(task_types and not {
        info[n].get("task_type") for n in KNOWN_TASKS if KNOWN_TASKS[n].get("suite") == "x-ares"} <= set(task_types))
    rows = []
    for run in runs:
        if search and search.lower() not in run.model.lower():
            continue
        if run.paper_tasks:
            row = _paper_row(run, probe, columns, info, narrowed or suite == "xares-mini")
            if row is not None:
                rows.append({**row, "_complete": True})
            continue
        weights = {t["name"]: t.get("eval_weight") or 0 for t in run.data["tasks"]}
        scores = {n: run.score(n, probe) for n in columns}
        if all(v is None for v in scores.values()):
            continue
        complete = all(v is not None for v in scores.values())
        row = {"Model": run.model, "Type": _type(run) + ("" if complete else " (incomplete)"), "Protocol": run.protocol}
        row["Average"] = _round(weighted_average([scores[n] for n in columns], [weights.get(n, 0) for n in columns]))
        for domain in DOMAINS:
            in_domain = [n for n in columns if info[n].get("domain") == domain]
            row[f"{domain.title()} avg"] = _round(weighted_average([scores[n] for n in in_domain], [weights.get(n, 0) for n in in_domain]))
        row["± seeds"] = _round(seed_spread(run, columns, probe))
        row["Tasks"] = f"{sum(s is not None for s in scores.values())}/{len(columns)}"
        for n in columns:
            row[info[n].get("formal_name") or n] = _round(scores[n])
        rows.append({**row, "_complete": complete})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["Model", "Type", "Protocol", "Average"])
    key = sort_by if sort_by in frame.columns else "Average"
    frame = frame.sort_values(key, ascending=key == "Model", na_position="last", kind="stable")
    frame = frame.sort_values("_complete", ascending=False, kind="stable")  # complete runs first, in the chosen order
    return frame.drop(columns="_complete").reset_index(drop=True)


def model_details(runs: list[Run], model: str) -> pd.DataFrame:
    """All of one run's scores with their metric, eval size, seed, and the run's version and date."""
    run = next((r for r in runs if r.model == model), None)
    if run is None:
        return pd.DataFrame()
    rows = [
        {
            "Task": t.get("formal_name", t["name"]), "Domain": t.get("domain"), "Metric": t.get("metric"),
            "MLP": _round(t.get("mlp")), "MLP score": _round(t.get("mlp_score")), "± (seeds)": _round(t.get("mlp_std")),
            "kNN": _round(t.get("knn")), "Seeds": len(t.get("seed_runs") or []) or 1, "Layer": t.get("layer"),
            "Eval size": t.get("eval_size"), "Weight": t.get("eval_weight"), "Seed": t.get("seed"),
            "xares-hf": run.data.get("xares_hf_version"), "Date": str(run.data.get("created", ""))[:10],
        }
        for t in run.data["tasks"]
    ]
    return pd.DataFrame(rows)


def seed_spread(run: Run, columns: list[str], probe: str = "mlp") -> float | None:
    """Sample standard deviation over seeds of the run's weighted average over ``columns`` (None for one seed)."""
    return submission.seed_spread([t for t in run.data["tasks"] if t["name"] in columns], probe)


def layer_profile(runs: list[Run], model: str) -> pd.DataFrame:
    """A layer sweep's normalised MLP score per layer and task (``layer="all"`` runs): Layer, Score, Task."""
    run = next((r for r in runs if r.model == model), None)
    rows = [{"Layer": int(layer), "Score": v.get("mlp_score"), "Task": t.get("formal_name", t["name"])}
            for t in (run.data["tasks"] if run else []) for layer, v in (t.get("layer_profile") or {}).items()]
    return pd.DataFrame(rows, columns=["Layer", "Score", "Task"])


def layer_weights(runs: list[Run], model: str) -> pd.DataFrame:
    """The learnt weight of each layer per task (``layer="weighted"`` runs): Layer, Weight, Task."""
    run = next((r for r in runs if r.model == model), None)
    rows = [{"Layer": i, "Weight": w, "Task": t.get("formal_name", t["name"])}
            for t in (run.data["tasks"] if run else []) for i, w in enumerate(t.get("layer_weights") or [])]
    return pd.DataFrame(rows, columns=["Layer", "Weight", "Task"])


def _round(value):
    return None if value is None else round(float(value), 3)

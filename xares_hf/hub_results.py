"""Publish X-ARES results on the Hugging Face Hub, in the two formats the Hub reads.

1. The model card's ``model-index`` (YAML front matter of ``README.md``), built with huggingface_hub's
   :class:`~huggingface_hub.EvalResult` and ``eval_results_to_model_index`` (:mod:`xares_hf.model_card` merges it
   into an existing card, writes and pushes).
   Spec: https://github.com/huggingface/hub-docs/blob/main/modelcard.md (``model-index``).
2. ``.eval_results/<benchmark>.yaml`` files in the model repo (https://huggingface.co/docs/hub/eval-results),
   one entry per task and probe, in the format of huggingface_hub's ``EvalResultEntry`` /
   ``eval_result_entries_to_yaml``::

       - dataset:
           id: xares/xares-benchmark   # the benchmark dataset repo
           task_id: esc50/mlp          # one of the ids in that repo's eval.yaml
           revision: <sha>             # optional: the benchmark dataset's git revision
         value: 0.8125
         date: '2025-01-15T10:30:00+00:00'
         source: {url: ..., name: xares-hf 0.1.0}
         notes: metric=accuracy; probe=MLP; eval_size=2000; seed=42; encoder_revision=main

   The Hub aggregates these on the benchmark dataset repo, whose ``eval.yaml`` lists the task ids
   (``tasks: [{id, config, split}]``, see :func:`benchmark_eval_yaml`).

Notes on the mapping:

- ``dataset.revision`` is, per the spec, the git revision of the *benchmark dataset*, not of the encoder;
  the encoder's revision (and layer) therefore go into ``notes`` and ``dataset.revision`` is only written
  when ``dataset_revision`` is given.
- kNN values are accuracies whatever the task's metric (X-ARES runs kNN on single-label clip tasks only,
  and :class:`~xares_hf.results.Results` averages them as accuracies).
- Both formats require a source URL whenever a source name is given; it defaults to the benchmark
  dataset's page.
- Hub task ids: clip -> ``audio-classification``, asr -> ``automatic-speech-recognition``; frame-level
  event detection and audio-text retrieval have no Hub task id, so they are ``other`` (with a
  descriptive task name).
- Splits are reported as ``test``: the held-out evaluation data (for k-fold tasks, the mean over folds).
- No function here contacts the Hub.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import unicodedata
from typing import Any, Iterable

import yaml

from .paths import safe_component
from .protocols import DEFAULT as DEFAULT_PROTOCOL
from .results import Results, TaskResult, validate_results
from .scoring import METRICS
from .task_types import KNN_METRIC, TASK_TYPES

DEFAULT_DATASET_REPO = "xares/xares-benchmark"
EVAL_RESULTS_FOLDER = ".eval_results"
SOURCE_NAME = "xares-hf"
ROUND = 4

PROBES = {"mlp": "MLP", "knn": "kNN"}
AVERAGE_TASK = "average"  # task id prefix of the weighted averages in .eval_results and eval.yaml
AVERAGE_METRIC = "xares_score"  # the evaluate module computing X-ARES' weighted average of normalised scores

_YAML_HEADER = f"# X-ARES results, written by {SOURCE_NAME} (one entry per task and probe)\n"
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_MAX_TEXT = 300


class CardError(ValueError):
    """Results that cannot be published faithfully; the message names the field and what is wrong."""


def _plain(value: Any, field: str) -> None:
    """A one-line string without control, format or line-separator characters (no YAML or markdown can hide in it)."""
    if not isinstance(value, str) or not value:
        raise CardError(f"field '{field}' must be a non-empty string, got {type(value).__name__} {str(value)[:60]!r}")
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise CardError(f"field '{field}' holds the control character {bad!r} ({value[:60]!r}); names are published as one line of text")
    if len(value) > _MAX_TEXT:
        raise CardError(f"field '{field}' is {len(value)} characters long; at most {_MAX_TEXT} are published")


def check_exportable(results: Results, model_name: str | None = None, dataset_repo: str = DEFAULT_DATASET_REPO) -> None:
    """Refuse (:class:`CardError`, naming the field) results whose names or numbers could not be published as they are.

    The results must pass the results schema (:func:`~xares_hf.results.validate_results`: plain-text names, known
    metrics and task types, finite numbers, derived scores and averages equal to the recomputed ones); on top of that,
    what publishing needs: a repo id, task names that are task ids, names short enough to show, an ISO date. Nothing
    in a results file can add YAML entries or markdown structure to what is published."""
    if not isinstance(dataset_repo, str) or not _REPO_ID.fullmatch(dataset_repo):
        raise CardError(f"benchmark dataset repo {str(dataset_repo)[:60]!r} is not a Hub repo id (org/name)")
    try:
        validate_results(json.loads(json.dumps(results.to_dict())), "results")
    except (ValueError, TypeError) as err:
        raise CardError(str(err).removeprefix("results: ")) from None
    enc = results.encoder
    texts: dict[str, Any] = {"encoder.id": enc.get("id"), "created": results.created, "xares_hf_version": results.xares_hf_version}
    if model_name is not None:
        texts["model name"] = model_name
    if enc.get("revision") not in (None, ""):
        texts["encoder.revision"] = enc["revision"]
    if enc.get("layer") is not None and (not isinstance(enc["layer"], int) or isinstance(enc["layer"], bool)):
        texts["encoder.layer"] = enc["layer"]  # an index, or a layer mode's name
    for i, t in enumerate(results.tasks):
        texts[f"tasks[{i}].formal_name"] = t.formal_name
        if not _TASK_NAME.fullmatch(t.name):
            raise CardError(f"field 'tasks[{i}].name' = {t.name!r} is not a task id (letters, digits, _ . -)")
    for field, value in texts.items():
        _plain(value, field)
    try:
        _dt.datetime.fromisoformat(results.created)
    except ValueError:
        raise CardError(f"field 'created' must be an ISO 8601 date, got {results.created[:60]!r}") from None


def _averages(results: Results) -> list[tuple[str, float]]:
    """(probe, value) of the weighted averages that are published: MLP and kNN (not the spreads over seeds)."""
    return [(p, results.averages[p]) for p in PROBES if (results.averages or {}).get(p) is not None]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), ROUND)


def _source_url(dataset_repo: str, source_url: str | None) -> str:
    return source_url or f"https://huggingface.co/datasets/{dataset_repo}"


def _probe_values(task: TaskResult) -> list[tuple[str, float, str]]:
    """(probe, raw value, metric type) for each probe this task has a value for."""
    out = [("mlp", task.mlp, task.metric)]
    if task.knn is not None:
        out.append(("knn", task.knn, KNN_METRIC))
    return out


def task_id(task: str, probe: str) -> str:
    """The task id of one task and probe in ``.eval_results`` and ``eval.yaml`` (``esc50/mlp``)."""
    return f"{task}/{probe}"


def default_model_name(results: Results) -> str:
    return str(results.encoder.get("id") or "encoder")


# ---------------------------------------------------------------------------------------------------------
# model-index (README.md front matter)


def eval_results(
    results: Results,
    dataset_repo: str = DEFAULT_DATASET_REPO,
    dataset_revision: str | None = None,
    source_url: str | None = None,
) -> list:
    """One :class:`~huggingface_hub.EvalResult` per task and probe, plus one per weighted average."""
    from huggingface_hub import EvalResult

    check_exportable(results, dataset_repo=dataset_repo)
    url = _source_url(dataset_repo, source_url)
    tag = "" if results.protocol == DEFAULT_PROTOCOL else f" (protocol {results.protocol})"  # never mistaken for the other's
    out = []
    for t in results.tasks:
        for probe, value, metric in _probe_values(t):
            out.append(
                EvalResult(
                    task_type=TASK_TYPES[t.task_type].hub_task_type if t.task_type in TASK_TYPES else "other",
                    task_name=TASK_TYPES[t.task_type].display_name if t.task_type in TASK_TYPES else t.task_type,
                    dataset_type=dataset_repo,
                    dataset_name=f"X-ARES {t.formal_name}",
                    dataset_config=t.name,
                    dataset_split="test",
                    dataset_revision=dataset_revision,
                    metric_type=metric,
                    metric_value=_round(value),
                    metric_name=f"{PROBES[probe]} {METRICS[metric].display_name if metric in METRICS else metric}{tag}",
                    source_name=SOURCE_NAME,
                    source_url=url,
                )
            )
    for probe, value in _averages(results):
        out.append(
            EvalResult(
                task_type="other",
                task_name="X-ARES weighted average",
                dataset_type=dataset_repo,
                dataset_name="X-ARES",
                dataset_revision=dataset_revision,
                metric_type=AVERAGE_METRIC,
                metric_value=_round(value),
                metric_name=f"X-ARES weighted average ({PROBES[probe]}){tag}",
                source_name=SOURCE_NAME,
                source_url=url,
            )
        )
    return out


def model_index(
    results: Results,
    model_name: str | None = None,
    dataset_repo: str = DEFAULT_DATASET_REPO,
    dataset_revision: str | None = None,
    source_url: str | None = None,
) -> list[dict]:
    """The card's ``model-index`` block (results grouped per task by ``eval_results_to_model_index``).

    Metric values are the raw task metrics (accuracy, mAP, segment F1, R@1, inverse WER), rounded to
    4 decimals; the two weighted averages are X-ARES scores (mean of 0-1 normalised scores).
    """
    from huggingface_hub.repocard_data import eval_results_to_model_index

    check_exportable(results, model_name, dataset_repo)
    name = model_name or default_model_name(results)
    entries = eval_results(results, dataset_repo, dataset_revision, source_url)
    return eval_results_to_model_index(name, entries)


def model_card_metadata(
    results: Results, model_name: str | None = None, dataset_repo: str = DEFAULT_DATASET_REPO, **kwargs: Any
) -> dict:
    """The YAML front matter of a new model card: ``model-index`` (and ``tags``) only."""
    return {
        "tags": ["x-ares", "audio"],
        "model-index": model_index(results, model_name, dataset_repo, **kwargs),
    }


# ---------------------------------------------------------------------------------------------------------
# .eval_results/*.yaml and the benchmark's eval.yaml


def eval_results_filename(dataset_repo: str = DEFAULT_DATASET_REPO) -> str:
    """``.eval_results/<benchmark repo name>.yaml`` (as the Hub docs' ``.eval_results/hle.yaml`` for cais/hle)."""
    return f"{EVAL_RESULTS_FOLDER}/{safe_component(dataset_repo.split('/')[-1])}.yaml"


def _entries_to_yaml(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """huggingface_hub's ``eval_result_entries_to_yaml`` (>= 1.x); the same layout written by hand otherwise."""
    try:
        from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml
    except ImportError:  # older huggingface_hub: same format, see the module docstring
        out = []
        for e in entries:
            dataset = {"id": e["dataset_id"], "task_id": e["task_id"]}
            if e.get("dataset_revision"):
                dataset["revision"] = e["dataset_revision"]
            item: dict[str, Any] = {"dataset": dataset, "value": e["value"], "date": e["date"]}
            item["source"] = {"url": e["source_url"], "name": e["source_name"]}
            item["notes"] = e["notes"]
            out.append(item)
        return out
    return eval_result_entries_to_yaml([EvalResultEntry(**e) for e in entries])


def eval_result_entries(
    results: Results,
    dataset_repo: str = DEFAULT_DATASET_REPO,
    dataset_revision: str | None = None,
    source_url: str | None = None,
    include_averages: bool = True,
) -> list[dict[str, Any]]:
    """The ``.eval_results`` entries as ``EvalResultEntry`` keyword dicts: one per task and probe, then the averages."""
    check_exportable(results, dataset_repo=dataset_repo)
    enc = results.encoder
    common = {
        "dataset_id": dataset_repo,
        "dataset_revision": dataset_revision,
        "date": results.created,
        "source_url": _source_url(dataset_repo, source_url),
        "source_name": f"{SOURCE_NAME} {results.xares_hf_version}",
    }
    run = []
    if enc.get("revision"):
        run.append(f"encoder_revision={enc['revision']}")
    if enc.get("layer") is not None:
        run.append(f"layer={enc['layer']}")
    if results.protocol != DEFAULT_PROTOCOL:
        run.append(f"protocol={results.protocol}")
    out = []
    for t in results.tasks:
        for probe, value, metric in _probe_values(t):
            notes = [f"metric={metric}", f"probe={PROBES[probe]}", f"eval_size={t.eval_size}", f"seed={t.seed}", *run]
            out.append({**common, "task_id": task_id(t.name, probe), "value": _round(value), "notes": "; ".join(notes)})
    if include_averages:
        for probe, value in _averages(results):
            notes = [f"metric={AVERAGE_METRIC}", f"probe={PROBES[probe]}", "weighted average of normalised scores", *run]
            out.append({**common, "task_id": task_id(AVERAGE_TASK, probe), "value": _round(value), "notes": "; ".join(notes)})
    return out


def eval_result_files(
    results: Results,
    dataset_repo: str = DEFAULT_DATASET_REPO,
    dataset_revision: str | None = None,
    source_url: str | None = None,
    include_averages: bool = True,
) -> dict[str, str]:
    """Path in the model repo -> YAML text: ``{".eval_results/<benchmark>.yaml": ...}``."""
    entries = _entries_to_yaml(eval_result_entries(results, dataset_repo, dataset_revision, source_url, include_averages))
    text = _YAML_HEADER + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=4096)
    ids = [task_id(t.name, p) for t in results.tasks for p, _, _ in _probe_values(t)]
    ids += [task_id(AVERAGE_TASK, p) for p, _ in _averages(results)] if include_averages else []
    parsed = yaml.safe_load(text)
    if parsed != entries or [e["dataset"]["task_id"] for e in parsed] != ids:
        raise CardError(f"{eval_results_filename(dataset_repo)} does not read back as the results it was made from; nothing written")
    return {eval_results_filename(dataset_repo): text}


def benchmark_eval_yaml(
    task_names: Iterable[str],
    knn_tasks: Iterable[str] | None = None,
    include_averages: bool = True,
    name: str = "X-ARES",
    description: str = "The X-ARES audio-encoder benchmark: frozen encoders probed with an MLP and k-NN on speech, sound and music tasks (xares-hf).",
) -> str:
    """The benchmark dataset repo's ``eval.yaml``: one task per X-ARES task and probe (``tasks: [{id, config, split}]``).

    Each task's config is its task name (the config ``xares-hf push-data`` creates) and its split ``test``.
    kNN entries are listed for ``knn_tasks`` (default: every task). The weighted averages (``average/mlp``,
    ``average/knn``) have no config or split of their own and are listed with their id only.
    ``evaluation_framework`` is left out: the Hub validates it against a registry that has no xares-hf entry.
    """
    names = list(task_names)
    knn = set(names if knn_tasks is None else knn_tasks)
    tasks: list[dict[str, Any]] = []
    for t in names:
        tasks.append({"id": task_id(t, "mlp"), "config": t, "split": "test"})
        if t in knn:
            tasks.append({"id": task_id(t, "knn"), "config": t, "split": "test"})
    if include_averages:
        tasks += [{"id": task_id(AVERAGE_TASK, "mlp")}, {"id": task_id(AVERAGE_TASK, "knn")}]
    return yaml.safe_dump({"name": name, "description": description, "tasks": tasks}, sort_keys=False, allow_unicode=True)

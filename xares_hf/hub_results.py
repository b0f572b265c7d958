"""Publish X-ARES results on the Hugging Face Hub, in the two formats the Hub reads.

1. The model card's ``model-index`` (YAML front matter of ``README.md``), built with huggingface_hub's
   :class:`~huggingface_hub.EvalResult` and ``eval_results_to_model_index``, merged into an existing card
   through :class:`~huggingface_hub.ModelCard` so that its other metadata and its text are kept.
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
- No function here contacts the Hub except :func:`push` with ``dry_run=False``.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable

import yaml

from .paths import atomic_write_text, safe_component
from .results import Results, TaskResult, validate_results

DEFAULT_DATASET_REPO = "xares/xares-benchmark"
EVAL_RESULTS_FOLDER = ".eval_results"
SOURCE_NAME = "xares-hf"
ROUND = 4

# Hub task ids (https://huggingface.co/tasks) per X-ARES task type, and a pretty task name for each
HUB_TASK_TYPES = {
    "clip": "audio-classification",
    "asr": "automatic-speech-recognition",
    "frame": "other",
    "contrastive": "other",
}
TASK_TYPE_NAMES = {
    "clip": "Audio classification",
    "asr": "Automatic speech recognition",
    "frame": "Frame-level audio event detection",
    "contrastive": "Audio-text retrieval",
}
METRIC_NAMES = {
    "accuracy": "accuracy",
    "mAP": "mAP",
    "segmentf1_macro": "segment F1 (macro)",
    "segmentf1_micro": "segment F1 (micro)",
    "recallatk_r1": "R@1",
    "WER_inv": "inverse WER",
}
PROBES = {"mlp": "MLP", "knn": "kNN"}
AVERAGE_TASK = "average"  # task id prefix of the weighted averages in .eval_results and eval.yaml
AVERAGE_METRIC = "xares_score"  # the evaluate module computing X-ARES' weighted average of normalised scores

_TABLE_START = "<!-- xares-hf results: start -->"
_TABLE_END = "<!-- xares-hf results: end -->"
_YAML_HEADER = f"# X-ARES results, written by {SOURCE_NAME} (one entry per task and probe)\n"
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_MAX_TEXT = 300
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$#])")  # markdown; & < > become HTML entities


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


def _md(value: Any) -> str:
    """Text shown as itself in markdown: on one line, with HTML and markdown (``| * _ [ ] ` ~ $ #``) escaped."""
    text = "".join(c for c in " ".join(str(value).split()) if unicodedata.category(c) not in ("Cc", "Cf"))
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), ROUND)


def _source_url(dataset_repo: str, source_url: str | None) -> str:
    return source_url or f"https://huggingface.co/datasets/{dataset_repo}"


def _probe_values(task: TaskResult) -> list[tuple[str, float, str]]:
    """(probe, raw value, metric type) for each probe this task has a value for."""
    out = [("mlp", task.mlp, task.metric)]
    if task.knn is not None:
        out.append(("knn", task.knn, "accuracy"))
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
    out = []
    for t in results.tasks:
        for probe, value, metric in _probe_values(t):
            out.append(
                EvalResult(
                    task_type=HUB_TASK_TYPES.get(t.task_type, "other"),
                    task_name=TASK_TYPE_NAMES.get(t.task_type, t.task_type),
                    dataset_type=dataset_repo,
                    dataset_name=f"X-ARES {t.formal_name}",
                    dataset_config=t.name,
                    dataset_split="test",
                    dataset_revision=dataset_revision,
                    metric_type=metric,
                    metric_value=_round(value),
                    metric_name=f"{PROBES[probe]} {METRIC_NAMES.get(metric, metric)}",
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
                metric_name=f"X-ARES weighted average ({PROBES[probe]})",
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


def results_table(results: Results) -> str:
    """A markdown table of the results (raw values; kNN where run), between markers so it can be replaced.

    Every name in it comes from the results file and is shown as text (:func:`_md`), never as markdown or HTML."""
    check_exportable(results)
    enc = results.encoder
    what = _md(enc.get("id")) + (f" (revision {_md(enc['revision'])})" if enc.get("revision") else "")
    what += f", layer {_md(enc['layer'])}" if enc.get("layer") is not None else ""
    lines = [
        _TABLE_START,
        "## X-ARES results",
        "",
        f"Encoder {what}, evaluated with xares-hf {_md(results.xares_hf_version)} on {_md(results.created)}.",
        "",
        "| Task | Domain | Metric | MLP | kNN |",
        "|---|---|---|---:|---:|",
    ]
    for t in results.tasks:
        knn = "-" if t.knn is None else f"{t.knn:.4f}"
        lines.append(f"| {_md(t.formal_name)} | {_md(t.domain)} | {_md(t.metric)} | {t.mlp:.4f} | {knn} |")
    avg = results.averages or {}
    avg_mlp, avg_knn = (("-" if avg.get(k) is None else f"{avg[k]:.4f}") for k in ("mlp", "knn"))
    lines.append(f"| **Weighted average** (normalised) | | | {avg_mlp} | {avg_knn} |")
    lines.append(_TABLE_END)
    return "\n".join(lines) + "\n"


def _read_card_text(text_or_path: str | Path | None) -> str:
    if text_or_path is None:
        return ""
    if isinstance(text_or_path, Path):
        return text_or_path.read_text(encoding="utf-8")
    if "\n" not in text_or_path and not text_or_path.startswith("---") and os.path.isfile(text_or_path):
        return Path(text_or_path).read_text(encoding="utf-8")
    return text_or_path


def update_model_card(
    text_or_path: str | Path | None,
    results: Results,
    model_name: str | None = None,
    dataset_repo: str = DEFAULT_DATASET_REPO,
    table: bool = True,
    **kwargs: Any,
) -> str:
    """An existing README (text or path; None or '' for a new one) with these results merged in.

    The card's other metadata (license, tags, ...) and text are kept. Existing ``model-index`` results
    for other datasets are kept; those for ``dataset_repo`` are replaced by these results. An existing
    model-index name is kept. With ``table``, a results table is added to the text (or replaces the one
    a previous export added).
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    text = _read_card_text(text_or_path)
    name = model_name or default_model_name(results)
    meta = model_card_metadata(results, name, dataset_repo, **kwargs)  # checks the results and the name
    _, new = model_index_to_eval_results(meta["model-index"])
    table_text = results_table(results) if table else ""
    if not text.strip():
        title = f"# {_md(name)}"
        content = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + f"---\n\n{title}\n\n" + table_text
        _verify_card(content, new, name, table_text, title)
        return content
    card = ModelCard(text)
    kept = [r for r in (card.data.eval_results or []) if r.dataset_type != dataset_repo]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or name
    if table:
        body = card.text
        pattern = re.compile(re.escape(_TABLE_START) + r".*?" + re.escape(_TABLE_END) + r"\n?", re.S)
        if pattern.search(body):
            body = pattern.sub(lambda _: table_text, body, count=1)
        else:
            body = body.rstrip("\n") + ("\n\n" if body.strip() else "\n") + table_text
        card.text = body
    _verify_card(card.content, kept + new, card.data.model_name, table_text)
    return card.content


def _verify_card(content: str, expected: list, name: str, table_text: str, title: str | None = None) -> None:
    """The card, read back as the Hub reads it, holds exactly the results and name meant and the table as written."""
    from huggingface_hub import ModelCard

    card = ModelCard(content)
    if card.data.eval_results != expected or card.data.model_name != name:
        raise CardError("the model card's model-index does not read back as the results it was made from; nothing written")
    rows = table_text.splitlines()
    if table_text and (card.text.count(_TABLE_START) != 1 or table_text not in card.text
                       or [r for r in rows if r.startswith("#")] != ["## X-ARES results"]
                       or any(len(re.findall(r"(?<!\\)\|", r)) != 6 for r in rows if r.startswith("|"))):
        raise CardError("the model card's results table does not read back as written; nothing written")
    if title is not None and [r for r in card.text.splitlines() if r.startswith("#")][:1] != [title]:
        raise CardError("the model card's title does not read back as written; nothing written")


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


# ---------------------------------------------------------------------------------------------------------
# writing and pushing


def _load(results: Results | str | Path) -> Results:
    return results if isinstance(results, Results) else Results.load(results)


def export(
    results_path: Results | str | Path,
    out_dir: str | Path,
    dataset_repo: str = DEFAULT_DATASET_REPO,
    model_name: str | None = None,
) -> list[Path]:
    """Write ``<out_dir>/README.md`` (merged into one already there) and ``<out_dir>/.eval_results/*.yaml``."""
    results = _load(results_path)
    out = Path(out_dir)
    readme = out / "README.md"
    existing = readme.read_text(encoding="utf-8") if readme.exists() else None
    files = {"README.md": update_model_card(existing, results, model_name, dataset_repo), **eval_result_files(results, dataset_repo)}
    written = []  # everything is built and checked before anything is written
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(atomic_write_text(path, text))  # a killed export never leaves README.md half-written
    return written


def push(
    results_path: Results | str | Path,
    repo_id: str,
    dry_run: bool = True,
    dataset_repo: str = DEFAULT_DATASET_REPO,
    model_name: str | None = None,
    create_pr: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload README.md (merged with the repo's card) and the ``.eval_results`` files to a model repo in one commit.

    With ``dry_run`` (the default) nothing is contacted: the returned text lists the files and the
    commit that would be made, and shows the README as a new card (at push time it is merged with the
    repo's existing README, keeping its metadata and text). Otherwise returns the commit URL (or PR URL
    with ``create_pr``, for repos you cannot write to). The repo is created if it does not exist.
    """
    results = _load(results_path)
    message = commit_message or f"Add X-ARES results ({SOURCE_NAME} {results.xares_hf_version})"
    files = eval_result_files(results, dataset_repo)
    if dry_run:
        readme = update_model_card(None, results, model_name, dataset_repo)
        ops = {"README.md": readme, **files}
        lines = [
            f"dry run: one commit to model repo {repo_id} (revision {revision or 'main'}"
            + (", as a pull request" if create_pr else "") + ")",
            f"commit message: {message}",
            "operations:",
            *[f"  CommitOperationAdd(path_in_repo={path!r}, {len(text.encode())} bytes)" for path, text in ops.items()],
            "README.md is merged at push time with the repo's existing card (metadata and text kept, results for "
            f"{dataset_repo} replaced); without one it is:",
        ]
        for path, text in ops.items():
            lines += [f"--- {path} ---", text.rstrip("\n")]
        return "\n".join(lines) + "\n"

    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    api = HfApi()
    if not api.repo_exists(repo_id):
        api.create_repo(repo_id, exist_ok=True)
    existing = None
    try:
        existing = Path(hf_hub_download(repo_id, "README.md", revision=revision)).read_text(encoding="utf-8")
    except EntryNotFoundError:
        pass
    readme = update_model_card(existing, results, model_name, dataset_repo)
    operations = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode())]
    operations += [CommitOperationAdd(path_in_repo=p, path_or_fileobj=t.encode()) for p, t in files.items()]
    info = api.create_commit(repo_id, operations, commit_message=message, revision=revision, create_pr=create_pr)
    return info.pr_url if create_pr and info.pr_url else info.commit_url

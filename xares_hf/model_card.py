"""The model card of an encoder's Hub repo with its X-ARES results, written or pushed.

``README.md`` gets the ``model-index`` metadata (:mod:`xares_hf.hub_results` builds it) merged into an existing card
through :class:`~huggingface_hub.ModelCard`, so the card's other metadata and text are kept, and a results table
between markers, replaced by the next export. Every name in the table is shown as text, never as markdown or HTML,
and the card is read back as the Hub reads it before anything is written. :func:`export` writes the card and the
``.eval_results`` files to a folder, :func:`push` commits them to a model repo (or shows the commit with
``dry_run``); nothing here contacts the Hub except :func:`push` with ``dry_run=False``.
"""

from __future__ import annotations

import html
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from .hub_results import (
    DEFAULT_DATASET_REPO,
    SOURCE_NAME,
    CardError,
    check_exportable,
    default_model_name,
    eval_result_files,
    model_card_metadata,
)
from .paths import atomic_write_text
from .results import Results

_TABLE_START = "<!-- xares-hf results: start -->"
_TABLE_END = "<!-- xares-hf results: end -->"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$#])")  # markdown; & < > become HTML entities


def _md(value: Any) -> str:
    """Text shown as itself in markdown: on one line, with HTML and markdown (``| * _ [ ] ` ~ $ #``) escaped."""
    text = "".join(c for c in " ".join(str(value).split()) if unicodedata.category(c) not in ("Cc", "Cf"))
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


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

"""The public entry points: ``evaluate`` an encoder on tasks, ``check_encoder``, ``list_tasks``."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Iterable

import torch

from . import distributed
from .data import DataError, ensure_task_data, is_hub_layout
from .embedding_cache import EmbeddingCache
from .paths import default_data_dir
from .encoders import EncoderContractError, load_encoder
from .encoders import check_encoder as _check
from .hub_results import DEFAULT_DATASET_REPO
from .metric_modules import register_metrics  # noqa: F401  (public: the CLI's register-metrics)
from .pipeline import evaluate_task
from .protocols import DEFAULT as DEFAULT_PROTOCOL
from .protocols import PROTOCOLS  # noqa: F401  (the CLI offers these)
from .run_config import LAYER_MODES, RunConfig
from .results import Results
from .suites import DEFAULT_SIZE, SuiteBuildError, ensure_suite
from .tasks import LabelError, TaskCard, TaskCardError, load_tasks, shipped_cards

# what bad input raises (a card, the data, an encoder, a label, a missing file or value): the CLI prints these as one
# line instead of a traceback
INPUT_ERRORS = (TaskCardError, DataError, EncoderContractError, LabelError, SuiteBuildError, FileNotFoundError, ValueError)

logger = logging.getLogger("xares_hf")


def _resolve_tasks(
    tasks: str | Path | TaskCard | Iterable[str | Path | TaskCard] | None, data_dir: str | Path | None
) -> tuple[list[TaskCard], Path]:
    if tasks is None:
        folder = ensure_suite(DEFAULT_SIZE)
        return load_tasks([folder / "cards"]), Path(data_dir) if data_dir else folder
    if isinstance(tasks, (str, Path, TaskCard)):
        tasks = [tasks]
    cards = load_tasks(list(tasks))
    return cards, data_dir if is_hub_layout(data_dir or "") else Path(data_dir or default_data_dir())


def evaluate(
    model: str | os.PathLike | torch.nn.Module,
    tasks: str | Path | TaskCard | Iterable[str | Path | TaskCard] | None = None,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = "xares_results",
    cache_dir: str | Path | None = None,
    layer: int | str | None = None,
    revision: str | None = None,
    device: str | torch.device | None = None,
    seed: int = 42,
    knn: bool = True,
    asr_head: str | None = None,
    asr_decoder: str | None = None,
    pad_whisper: bool = True,
    download: bool = True,
    mixed_precision: str | None = None,
    on_bad_sample: str = "error",
    trust_remote_code: bool = False,
    seeds: int = 1,
    protocol: str = DEFAULT_PROTOCOL,
    decode_workers: int | None = None,
) -> Results:
    """Evaluate an audio encoder on benchmark tasks and return its :class:`Results`.

    Args:
        model: a Hub id or local folder of any ``transformers`` audio model, a ``.py`` file with an
            X-ARES encoder class (``file.py[:Class]``), a built-in baseline (``"log-mel"``) or an ``nn.Module``.
        tasks: task names, card paths or folders of cards; ``None`` runs xares-mini, the built-in suite of
            real audio (built on first use, about a minute).
        data_dir: folder with ``<task>/<split>*.tar`` shards (X-ARES' layout), or a Hub dataset repo laid out
            with a config per task (``hf://datasets/ORG/NAME`` or such a local folder). Default: the built-in
            suite's, or for named tasks ``$XARES_HF_DATA`` (``~/.cache/huggingface/xares_hf/data``).
        output_dir: where ``<encoder id>/results.json`` is written; ``None`` writes nothing.
        cache_dir: embedding cache (default ``$XARES_HF_CACHE`` or ``~/.cache/huggingface/xares_hf/embeddings``).
        layer: hidden-state index of a ``transformers`` model (default: the last layer); ``"all"`` encodes
            every layer once and probes each (the task's score is the layer best on validation; the per-layer
            profile is in each task's ``layer_profile``); ``"weighted"`` trains a softmax-weighted sum of all
            layers with the probe (SUPERB; the learnt weights are in ``layer_weights``).
        revision: Hub revision of the model.
        device: where the encoder runs (default: the device Accelerate assigns this process).
        seed: seed of probe training (X-ARES uses 42); the same inputs give the same scores.
        knn: also run the k-NN probe on tasks whose card allows it.
        asr_head: override the ASR cards' head: ``"llm"`` (adapter into a frozen causal LM, the paper's)
            or ``"ctc"`` (a light character probe that needs no pretrained decoder).
        asr_decoder: override the causal LM of the ``"llm"`` head (Hub id or local folder).
        mixed_precision: ``"bf16"`` or ``"fp16"`` autocast while encoding (GPU; bf16 also on CPU).
        download: fetch a missing task's Zenodo record into ``data_dir`` (never offline or for private tasks).
        pad_whisper: Whisper models see 30 s windows as their feature extractor (and X-ARES) makes them;
            ``False`` encodes each clip at its own length: much faster on short clips, different embeddings.
        on_bad_sample: ``"error"`` stops at a corrupt sample or bad label, naming task, shard and key;
            ``"skip"`` leaves such samples out and lists them in each task's ``skipped``.
        trust_remote_code: let a ``transformers`` model run its own code from the Hub (off unless asked for).
        seeds: train the probes with this many seeds (``seed``, ``seed + 1``, ...) on the same embeddings;
            scores are their mean, with the standard deviation per task and of the weighted averages.
        protocol: ``"xares-hf"`` (cosine k-NN, padding trimmed and masked, every crop kept) or ``"xares-0.1.3"``,
            which reproduces xares 0.1.3's computations where its code differs from its documentation (its
            per-dimension k-NN, padded batches pooled with their padding, one crop per clip per batch, raw
            retrieval logits; :mod:`xares_hf.protocols`). Results, cache entries and the results folder are
            keyed by it; numbers of different protocols are different measurements.
        decode_workers: processes that read and decode audio ahead of the encoder (0: in this process). Default:
            none when the encoder runs on the CPU, else this process's share of the cores less one, at most 8.

    A killed run started again reuses every finished shard's embeddings and every finished task's scores.
    """
    if isinstance(layer, str) and layer not in LAYER_MODES:
        raise ValueError(f"layer must be a hidden-state index, 'all' or 'weighted', got {layer!r}")
    layer_mode = layer if isinstance(layer, str) else None
    config = RunConfig(protocol=protocol, mixed_precision=mixed_precision, on_bad_sample=on_bad_sample, seed=seed,
                       seeds=seeds, knn=knn, layer_mode=layer_mode,
                       decode_workers=decode_workers)  # checked here, before any data is fetched
    cards, data_root = _resolve_tasks(tasks, data_dir)
    cards = [_with_asr_choice(card, asr_head, asr_decoder) for card in cards]
    files = {}
    for card in cards:  # every task's shards must be there before any encoding starts; one process downloads
        if distributed.is_main():
            ensure_task_data(card, data_root, download=download)
        distributed.barrier()
        files[card.name] = ensure_task_data(card, data_root, download=False)
    if device is None:
        device = distributed.device()
    encoder = load_encoder(model, layer="all" if layer_mode else layer, revision=revision, device=device, pad_whisper=pad_whisper,
                           trust_remote_code=trust_remote_code)
    report = _check(encoder)
    for warning in report.warnings:
        logger.warning("encoder %s: %s", report.name, warning)
    cache = EmbeddingCache(cache_dir)
    config = dataclasses.replace(config, device=str(device))
    task_results = [evaluate_task(card, encoder, data_root, cache, config, files=files[card.name]) for card in cards]
    results = Results(
        encoder={
            **encoder.identity,
            **({"layer": layer_mode} if layer_mode else {}),
            "sampling_rate": report.sampling_rate,
            "output_dim": report.output_dim,
            "hop_size_in_ms": report.hop_size_in_ms,
        },
        tasks=task_results,
        run={"world_size": distributed.world_size(), "mixed_precision": config.mixed_precision or "no", "device": str(device),
             "on_bad_sample": config.on_bad_sample, "seeds": config.seeds, "protocol": config.protocol.name},
    )
    if output_dir is not None and distributed.is_main():
        results.save(output_dir)
    return results


def _with_asr_choice(card: TaskCard, head: str | None, decoder: str | None) -> TaskCard:
    if card.task_type != "asr" or (head is None and decoder is None):
        return card
    update = {k: v for k, v in (("head", head), ("decoder", decoder)) if v is not None}
    if update.get("head") not in (None, "ctc", "llm"):
        raise ValueError(f"asr_head must be 'ctc' or 'llm', got {head!r}")
    return card.model_copy(update={"probe": card.probe.model_copy(update=update)})


def check_encoder(model: str | os.PathLike | torch.nn.Module, layer: int | None = None):
    """Load an encoder and validate the X-ARES contract; raises ``EncoderContractError`` saying what is wrong."""
    return _check(load_encoder(model, layer=layer))


def list_tasks() -> list[TaskCard]:
    """The task cards shipped with xares-hf."""
    return load_tasks(list(shipped_cards()))


# ------------------------------------------------------------------------------ the other commands' public functions


def build_mini(size: str = DEFAULT_SIZE, seed: int = 0, out: str | Path | None = None,
               tasks: list[str] | None = None) -> Path:
    """Build xares-mini (real audio, offline) and return its folder (``cards/`` holds its task cards)."""
    from .suites import build_mini_suite, suite_dir

    return build_mini_suite(out or suite_dir(size, seed), size=size, seed=seed, tasks=tasks)


def leaderboard_table(results_dir: str | Path) -> str:
    """Every ``results.json`` under ``results_dir`` side by side (runs of another protocol marked)."""
    from .results import leaderboard

    files = sorted(Path(results_dir).rglob("results.json"))
    if not files:
        raise FileNotFoundError(f"no results.json under {results_dir}")
    return leaderboard([Results.load(f) for f in files])


def serve_leaderboard(results_dir: str | Path, host: str | None = None, port: int | None = None) -> None:
    """Serve the leaderboard Space (``spaces_app/app.py``) over ``results_dir``; where it listens is Gradio's choice
    (``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``, else 127.0.0.1:7860) unless ``host``/``port`` are given."""
    import importlib.util

    path = Path(__file__).resolve().parent / "leaderboard_app" / "app.py"
    spec = importlib.util.spec_from_file_location("xares_leaderboard_app", path)
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    app.serve(results_dir, host=host, port=port)


def export_card(results_path: str | Path, out_dir: str | Path | None = None,
                dataset_repo: str = DEFAULT_DATASET_REPO) -> list[Path]:
    """Write the model card's ``model-index`` (merged into a ``README.md`` there) and ``.eval_results/`` files."""
    from .model_card import export

    return export(results_path, out_dir or Path(results_path).parent, dataset_repo=dataset_repo)


def push_card(results_path: str | Path, repo_id: str, dry_run: bool = True, dataset_repo: str = DEFAULT_DATASET_REPO,
              create_pr: bool = False) -> str:
    """Commit the model card and ``.eval_results/`` to a model repo (``dry_run``: describe the commit only)."""
    from .model_card import push

    return str(push(results_path, repo_id, dry_run=dry_run, dataset_repo=dataset_repo, create_pr=create_pr))


def download_tasks(tasks: Iterable[str | Path | TaskCard], data_dir: str | Path | None = None) -> dict[str, dict[str, list[str]]]:
    """Fetch each task's missing shards (its Zenodo record) into ``data_dir``: task -> split -> shard files."""
    return {card.name: ensure_task_data(card, data_dir or default_data_dir(), download=True) for card in load_tasks(list(tasks))}


def plan_data_push(tasks: Iterable[str | Path | TaskCard], data_dir: str | Path | None, repo_id: str):
    """What pushing the tasks' shards to a Hub dataset repo would upload (one config per task)."""
    from .data.hub_publish import plan_push

    return plan_push(load_tasks(list(tasks)), data_dir or default_data_dir(), repo_id)


def push_data(plan, private: bool = False) -> str:
    """Upload a :func:`plan_data_push` plan."""
    from .data.hub_publish import push

    return push(plan, private=private)


def task_overview(data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """One row per shipped task: its facts and whether its data is in ``data_dir`` (else its Zenodo record)."""
    from .data import DataError, shard_files

    rows = []
    for c in list_tasks():
        try:
            shard_files(c, data_dir or default_data_dir())
            present = "present"
        except DataError:
            present = f"zenodo {c.data.zenodo_id}" if c.data.zenodo_id else "missing"
        rows.append({"Task": c.name, "Formal name": c.formal_name, "Domain": c.domain, "Type": c.task_type,
                     "Metric": c.metric, "Classes": str(c.labels.num_classes or "-"), "Weight": f"{c.eval_weight:g}",
                     "kNN": "yes" if c.knn else "no",
                     "Splits": f"{len(c.data.folds)} folds" if c.is_k_fold else "train/valid/test", "Data": present})
    return rows

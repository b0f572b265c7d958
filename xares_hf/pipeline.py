"""One task end to end: shards -> encoding (:mod:`.encoding`, cached per shard) -> the task type's probe(s) -> scores.

Orchestration only: which splits, the result cache (a finished task is not trained again), the checks across
splits, labels decoded from the stored metadata, the probes, and the task's :class:`TaskResult`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import distributed, evaluators, probes, probing, profiling, protocols, scoring, task_types
from .tasks import labels as labels_module
from .data import clip_key, shard_files
from .data.shards import unused_shards
from .embedding_cache import EmbeddingCache, SplitEmbeddings
from .encoding import SplitEncoder
from .evaluators import SplitData
from .heap import bound_heap_growth
from .probing import probe_task
from .results import TaskResult
from .run_config import RunConfig
from .tasks import LabelEncoder, TaskCard
from .tasks.audit import not_scored, repeated_samples


def _result_key(card: TaskCard, entries: dict[str, list[str]], settings: dict, device: str, hop: float) -> str:
    """What a task's scores depend on beyond the embeddings' keys: the card, the probe settings, the scoring code."""
    blob = json.dumps({"card": card.model_dump(mode="json"), "entries": entries, **settings,
                       "device": torch.device(device).type, "hop": hop, "code": _scoring_code_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def scoring_sources() -> list[Path]:
    """The source files that turn embeddings into scores, each listed by its owner: the probes, the evaluators, the
    metric registry with the metric modules it loads, the probing, protocol, task-type and label code."""
    owners = [Path(m.__file__) for m in (probing, protocols, task_types, labels_module)]
    return sorted({*probes.SOURCE_FILES, *evaluators.SOURCE_FILES, *scoring.source_files(), *owners})


@functools.cache
def _scoring_code_hash() -> str:
    """A hash of :func:`scoring_sources`, so editing a probe or a metric never reuses an old result."""
    digest = hashlib.sha256()
    for path in scoring_sources():
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def evaluate_task(
    card: TaskCard,
    encoder: torch.nn.Module,
    data_dir: str | Path,
    cache: EmbeddingCache,
    config: RunConfig | None = None,
    files: dict[str, list[str]] | None = None,
) -> TaskResult:
    """Score one task for one encoder, reusing cached embeddings and finished results.

    ``config`` holds the run's settings (seeds, k-NN, device, precision, bad-sample policy, layer mode, protocol:
    :class:`~xares_hf.run_config.RunConfig`). ``files`` are the task's shards per split when the caller has
    already located them. A task whose embeddings and scores are both cached (same encoder, data, card, settings
    and scoring code) is not trained again: a run killed after it resumes with the next task.
    """
    config = config or RunConfig()
    bound_heap_growth()
    files = files or shard_files(card, data_dir)
    unused = [{"split": "", "file": f, "key": "", "reason": "no split or fold pattern of the card matches this shard: "
               "not used"} for f in unused_shards(card, data_dir, files)]  # the folder's, so never cached
    hop = float(encoder.hop_size_in_ms)
    labels = LabelEncoder(card.labels, card.name)
    encoders = {split: SplitEncoder(encoder, card, split, split_files, labels, cache, config)
                for split, split_files in files.items()}  # each split's shard keys, computed once
    settings = {"seed": config.seed, "seeds": config.seeds, "knn": config.knn, "layer_mode": config.layer_mode,
                "protocol": config.protocol.name}
    result_key = _result_key(card, {s: e.keys for s, e in encoders.items()}, settings, config.device, hop)
    done = cache.load_result(card.name, result_key)
    if (done is not None and all(e.is_cached() for e in encoders.values())
            and (config.on_bad_sample == "skip" or not done.get("skipped"))):
        return TaskResult(**{**done, "encoded": False, "left_out": unused + done.get("left_out", [])})

    started = time.perf_counter()
    data, skipped, left_out = {}, [], []
    with profiling.stage("encoding"):  # every split cached first: one shard's embeddings in memory at a time
        encoded = [e.ensure_cached() for e in encoders.values()]
    splits: dict[str, SplitEmbeddings] = {}
    for split, split_encoder in encoders.items():
        splits[split], again = split_encoder.load()
        encoded.append(again)  # an entry found unreadable on loading is encoded again
    repeated, repeats_skipped = repeated_samples(card, splits, config.on_bad_sample)
    for split, embeddings in splits.items():
        embeddings = splits[split] = _without(embeddings, repeated.get(split, []))
        skipped.extend({k: v for k, v in s.items() if k != "position"} for s in embeddings.skipped)
        left_out.extend(embeddings.left_out)
        notes: list[tuple[int, str]] = []
        decoded = labels.encode_many(embeddings.metas, [f"split '{split}', {w}" for w in embeddings.wheres],
                                     embeddings.durations, notes)
        left_out.extend(_label_notes(card, split, embeddings, notes))
        data[split] = SplitData(embeddings.pooled, decoded, embeddings.frames)
    skipped.extend(repeats_skipped)
    left_out.extend(not_scored(card, data, {s: (e.urls, e.keys) for s, e in splits.items()}, hop))
    encode_s = time.perf_counter() - started

    t0 = time.perf_counter()
    with profiling.stage("probes"):
        scores = probe_task(card, data, hop, config, stacked_layers=int(getattr(encoder, "stacked_layers", 1)))
    probe_s = time.perf_counter() - t0
    result = TaskResult(
        name=card.name,
        formal_name=card.formal_name,
        domain=card.domain,
        task_type=card.task_type,
        metric=card.metric,
        eval_weight=card.eval_weight,
        seed=config.seed,
        encoded=any(encoded),
        timings={"encode_s": round(encode_s, 3), "probe_s": round(probe_s, 3)},
        skipped=skipped,
        left_out=left_out,
        **scores,
    )
    if distributed.is_main():
        cache.save_result(card.name, result_key, asdict(result))
    result.left_out = unused + result.left_out
    return result


def _without(embeddings: SplitEmbeddings, rows: list[int]) -> SplitEmbeddings:
    """The split without the given rows (repeated samples left out)."""
    if not rows:
        return embeddings
    dropped = set(rows)
    return embeddings.select([i for i in range(len(embeddings)) if i not in dropped])


def _label_notes(card: TaskCard, split: str, embeddings: SplitEmbeddings, notes: list[tuple[int, str]]) -> list[dict]:
    """``left_out`` entries for what the labels hold that is not used, once per clip (not once per crop)."""
    entries, seen = [], set()
    for row, note in notes:
        key, url = embeddings.keys[row], embeddings.urls[row]
        clip = (url, clip_key(key, card.data.crop_length is not None), note)
        if clip not in seen:
            seen.add(clip)
            entries.append({"split": split, "file": url, "key": clip[1], "reason": note})
    return entries

"""One task end to end: shards -> encoder -> cached embeddings -> linear probe and k-NN -> scores."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import scoring
from .data import iter_audio, shard_files
from .embedding_cache import EmbeddingCache, SplitEmbeddings, fingerprint
from .encoders import encode_batch
from .probes import knn_predict, train_linear_probe
from .results import TaskResult
from .tasks import LabelEncoder, TaskCard


def encode_split(
    encoder: torch.nn.Module,
    card: TaskCard,
    split: str,
    files: list[str],
    labels: LabelEncoder,
    cache: EmbeddingCache,
) -> tuple[SplitEmbeddings, bool]:
    """Pooled embeddings of one split, from the cache or by encoding it once; True if it was encoded."""
    sampling_rate = int(encoder.sampling_rate)
    key = fingerprint(
        {**encoder.identity, "sampling_rate": sampling_rate},
        card.name,
        files,
        {"crop_length": card.data.crop_length, "pooling": "mean"},
    )
    cached = cache.load(card.name, key)
    if cached is not None:
        return cached, False
    pooled, keys, urls, metas = [], [], [], []
    batch = []

    def flush() -> None:
        for sample, frames in zip(batch, encode_batch(encoder, [s.audio for s in batch])):
            pooled.append(frames.mean(axis=0))
        batch.clear()

    samples = iter_audio(files, sampling_rate, card.name, split, card.data.crop_length)
    for sample in tqdm(samples, desc=f"encode {card.name}/{split}", unit="clip", leave=False):
        labels.encode(sample.meta, f"split '{split}', {sample.where}")  # fail before spending encoder time
        keys.append(sample.key)
        urls.append(sample.url)
        metas.append(sample.meta)
        batch.append(sample)
        if len(batch) == card.probe.batch_size_encode:
            flush()
    if batch:
        flush()
    if not keys:
        raise ValueError(f"task '{card.name}', split '{split}': the shards {files} hold no samples")
    embeddings = SplitEmbeddings(np.stack(pooled).astype(np.float32), keys, urls, metas)
    cache.save(card.name, key, embeddings)
    return embeddings, True


def _argmax_score(metric: str):
    def score(logits: np.ndarray, labels: np.ndarray) -> float:
        return scoring.compute(metric, predictions=logits.argmax(axis=1), references=labels)

    return score


def _folds(card: TaskCard, data: dict[str, tuple[np.ndarray, np.ndarray]]):
    """(name, train, valid, test) arrays for each evaluation round: one for splits, k for folds."""
    if not card.is_k_fold:
        yield "test", data["train"], data["valid"], data["test"]
        return
    for held_out in data:
        rest = [data[f] for f in data if f != held_out]
        train = (np.concatenate([r[0] for r in rest]), np.concatenate([r[1] for r in rest]))
        yield held_out, train, data[held_out], data[held_out]


def evaluate_task(
    card: TaskCard,
    encoder: torch.nn.Module,
    data_dir: str | Path,
    cache: EmbeddingCache,
    seed: int = 42,
    knn: bool = True,
) -> TaskResult:
    """Score one task for one encoder as X-ARES does, reusing cached embeddings where they exist."""
    if card.task_type != "clip":
        raise NotImplementedError(f"task '{card.name}': task type '{card.task_type}' is not supported yet")
    files = shard_files(card, data_dir)
    labels = LabelEncoder(card.labels, card.name)
    started = time.perf_counter()
    data, encoded = {}, []
    for split, split_files in files.items():
        embeddings, was_encoded = encode_split(encoder, card, split, split_files, labels, cache)
        encoded.append(was_encoded)
        data[split] = (embeddings.pooled, labels.encode_many(embeddings.metas, embeddings.wheres))
    encode_s = time.perf_counter() - started

    metric = card.metric
    folds: dict[str, dict[str, float]] = {}
    eval_size, mlp_s, knn_s = 0, 0.0, 0.0
    for name, train, valid, test in _folds(card, data):
        eval_size += len(test[1])
        t0 = time.perf_counter()
        probe = train_linear_probe(
            train,
            valid,
            test[0],
            num_classes=card.labels.num_classes,
            score=_argmax_score(metric),
            epochs=card.probe.epochs,
            learning_rate=card.probe.learning_rate,
            batch_size=card.probe.batch_size,
            multi_label=labels.multi_label,
            seed=seed,
            desc=f"probe {card.name}/{name}",
        )
        folds[name] = {"mlp": _argmax_score(metric)(probe.test_predictions, test[1]), "best_epoch": probe.best_epoch}
        mlp_s += time.perf_counter() - t0
        if knn and card.knn:
            t0 = time.perf_counter()
            predictions = knn_predict(train[0], train[1], test[0])
            folds[name]["knn"] = scoring.compute("accuracy", predictions=predictions, references=test[1])
            knn_s += time.perf_counter() - t0
    mlp_value = float(np.mean([f["mlp"] for f in folds.values()]))
    knn_values = [f["knn"] for f in folds.values() if "knn" in f]
    knn_value = float(np.mean(knn_values)) if knn_values else None
    return TaskResult(
        name=card.name,
        formal_name=card.formal_name,
        domain=card.domain,
        task_type=card.task_type,
        metric=metric,
        mlp=mlp_value,
        mlp_score=scoring.normalise(metric, mlp_value),
        knn=knn_value,
        knn_score=None if knn_value is None else scoring.normalise("accuracy", knn_value),
        eval_weight=card.eval_weight,
        eval_size=eval_size,
        seed=seed,
        folds=folds,
        encoded=any(encoded),
        timings={"encode_s": round(encode_s, 3), "mlp_s": round(mlp_s, 3), "knn_s": round(knn_s, 3)},
    )

"""One task end to end: shards -> encoder -> cached embeddings -> the task type's probe(s) -> scores."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed, profiling, scoring
from .data import prefetch_audio, shard_files
from .embedding_cache import EmbeddingCache, SplitEmbeddings, fingerprint
from .encoders import encode_batch
from .evaluators import NEEDS_FRAMES, Context, Round, SplitData, evaluator_for
from .results import TaskResult
from .tasks import LabelEncoder, TaskCard

# clips are encoded in batches of similar length, sorted within windows of this many batches: padding falls
# from up to 1.95x the audio to about 1.1x on the mini suite's speech tasks, while the audio held waiting stays small
SORT_WINDOW_BATCHES = 8


def _encode(
    encoder: torch.nn.Module,
    card: TaskCard,
    split: str,
    files: list[str],
    labels: LabelEncoder,
    keep_frames: bool,
    stride: tuple[int, int] = (0, 1),
    all_files: list[str] | None = None,
    mixed_precision: str | None = None,
) -> tuple[SplitEmbeddings, list[tuple[int, int, int]]]:
    """Encode the given shards (or every ``stride``-th clip of them); also returns each sample's place in the split."""
    sampling_rate = int(encoder.sampling_rate)
    index = {f: i for i, f in enumerate(all_files or files)}
    pooled, frames, keys, urls, metas, durations, order = [], [], [], [], [], [], []
    pending: list[tuple[int, np.ndarray]] = []  # (slot in the outputs, audio) not yet encoded
    size = card.probe.batch_size_encode
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))

    def flush() -> None:
        """Encode the pending clips in batches of similar length (less padding), each result into its slot."""
        pending.sort(key=lambda item: item[1].shape[0])
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            with profiling.phase("encoder forward"), distributed.autocast(device, mixed_precision):
                encoded = encode_batch(encoder, [audio for _, audio in chunk])
            profiling.note_peak("rss_while_encoding_mb", profiling.rss_mb())
            for (slot, _), clip_frames in zip(chunk, encoded):
                clip_frames = clip_frames.astype(np.float32, copy=False)
                pooled[slot] = clip_frames.mean(axis=0)
                if keep_frames:
                    frames[slot] = clip_frames
        pending.clear()

    # decoding ahead in a worker pays off when the encoder leaves the CPU idle; on a CPU-only machine the two
    # compete for the same cores and it measured slower (BENCHMARKS.md)
    decoded = prefetch_audio(files, sampling_rate, card.name, split, card.data.crop_length, stride=stride,
                             background=device.type != "cpu")
    samples = profiling.timed_iter("decode + resample", decoded)  # the wait for the next sample
    last, crop = None, 0
    for sample in tqdm(samples, desc=f"encode {card.name}/{split}", unit="clip", leave=False, disable=not distributed.is_main()):
        duration = sample.audio.shape[0] / sampling_rate
        labels.encode(sample.meta, f"split '{split}', {sample.where}", duration=duration)
        crop = crop + 1 if (sample.url, sample.position) == last else 0
        last = (sample.url, sample.position)
        order.append((index[sample.url], sample.position, crop))
        keys.append(sample.key)
        urls.append(sample.url)
        metas.append(sample.meta)
        durations.append(duration)
        pending.append((len(pooled), sample.audio))
        pooled.append(None)
        frames.append(None)
        if len(pending) == SORT_WINDOW_BATCHES * size:
            flush()
    flush()
    dim = int(encoder.output_dim)
    embeddings = SplitEmbeddings(
        np.stack(pooled).astype(np.float32) if pooled else np.zeros((0, dim), np.float32),
        keys, urls, metas, np.asarray(durations), frames if keep_frames else None,
    )
    return embeddings, order


def encode_split(
    encoder: torch.nn.Module,
    card: TaskCard,
    split: str,
    files: list[str],
    labels: LabelEncoder,
    cache: EmbeddingCache,
    mixed_precision: str | None = None,
) -> tuple[SplitEmbeddings, bool]:
    """Embeddings of one split, from the cache or by encoding it once; True if it was encoded.

    Labels are checked while streaming, so a bad sample stops the run before more encoding is spent.
    Under ``accelerate launch`` the processes share the work: whole shards round-robin when there are
    at least as many shards as processes, otherwise every n-th clip; each clip is encoded by exactly one
    process, the main process merges the parts in the split's order, and every process reads the result.
    """
    keep_frames = card.task_type in NEEDS_FRAMES
    key = fingerprint(
        {**encoder.identity, "sampling_rate": int(encoder.sampling_rate)},
        card.name,
        files,
        {"crop_length": card.data.crop_length, "pooling": "mean", "frames": keep_frames, "precision": mixed_precision or "no"},
    )
    with profiling.phase("cache I/O"):
        cached = cache.load(card.name, key)
    if cached is not None:
        return cached, False
    world, rank = distributed.world_size(), distributed.rank()
    if world == 1:
        embeddings, _ = _encode(encoder, card, split, files, labels, keep_frames, mixed_precision=mixed_precision)
    else:
        if len(files) >= world:
            part, order = _encode(encoder, card, split, files[rank::world], labels, keep_frames, all_files=files,
                                  mixed_precision=mixed_precision)
        else:
            part, order = _encode(encoder, card, split, files, labels, keep_frames, stride=(rank, world),
                                  mixed_precision=mixed_precision)
        cache.save(card.name, f"{key}.part{rank}-of-{world}", part, order=order)
        distributed.barrier()
        if distributed.is_main():
            parts = [cache.load(card.name, f"{key}.part{r}-of-{world}", with_order=True) for r in range(world)]
            embeddings = SplitEmbeddings.merge(parts)
            cache.save(card.name, key, embeddings)
            cache.write_log(card.name, key, {"encoded_per_process": [len(p[0]) for p in parts]})
            for r in range(world):
                cache.path(card.name, f"{key}.part{r}-of-{world}").unlink(missing_ok=True)
        distributed.barrier()
        embeddings = cache.load(card.name, key)
    if not len(embeddings):
        raise ValueError(f"task '{card.name}', split '{split}': the shards {files} hold no samples")
    if world == 1:
        with profiling.phase("cache I/O"):
            cache.save(card.name, key, embeddings)
            cache.write_log(card.name, key, {"encoded_per_process": [len(embeddings)]})
    return embeddings, True


def _rounds(card: TaskCard, data: dict[str, SplitData]):
    """Evaluation rounds: train/valid/test once, or each fold held out (trained on the others)."""
    if not card.is_k_fold:
        yield Round("test", data["train"], data["valid"], data["test"])
        return
    for held_out in data:
        train = SplitData.join([data[f] for f in data if f != held_out])
        yield Round(held_out, train, data[held_out], data[held_out])


def evaluate_task(
    card: TaskCard,
    encoder: torch.nn.Module,
    data_dir: str | Path,
    cache: EmbeddingCache,
    seed: int = 42,
    knn: bool = True,
    device: str = "cpu",
    mixed_precision: str | None = None,
    files: dict[str, list[str]] | None = None,
) -> TaskResult:
    """Score one task for one encoder as X-ARES does, reusing cached embeddings where they exist.

    ``files`` are the task's shards per split when the caller has already located them.
    """
    files = files or shard_files(card, data_dir)
    labels = LabelEncoder(card.labels, card.name)
    started = time.perf_counter()
    data, encoded = {}, []
    for split, split_files in files.items():
        embeddings, was_encoded = encode_split(encoder, card, split, split_files, labels, cache, mixed_precision)
        encoded.append(was_encoded)
        decoded = labels.encode_many(embeddings.metas, [f"split '{split}', {w}" for w in embeddings.wheres])
        data[split] = SplitData(embeddings.pooled, decoded, embeddings.frames)
    encode_s = time.perf_counter() - started

    ctx = Context(card=card, hop_size_in_ms=float(encoder.hop_size_in_ms), seed=seed, knn=knn, device=device)
    evaluate_round = evaluator_for(card.task_type)
    folds, eval_size = {}, 0
    t0 = time.perf_counter()
    for round_ in _rounds(card, data):
        with profiling.phase("probe training"):
            folds[round_.name] = evaluate_round(ctx, round_)
        eval_size += len(round_.test)
    probe_s = time.perf_counter() - t0

    mlp_value = float(np.mean([f["mlp"] for f in folds.values()]))
    knn_values = [f["knn"] for f in folds.values() if "knn" in f]
    knn_value = float(np.mean(knn_values)) if knn_values else None
    details = {k: v for k, v in next(iter(folds.values())).items() if isinstance(v, str) or v is None}
    return TaskResult(
        name=card.name,
        formal_name=card.formal_name,
        domain=card.domain,
        task_type=card.task_type,
        metric=card.metric,
        mlp=mlp_value,
        mlp_score=scoring.normalise(card.metric, mlp_value),
        knn=knn_value,
        knn_score=None if knn_value is None else scoring.normalise("accuracy", knn_value),
        eval_weight=card.eval_weight,
        eval_size=eval_size,
        seed=seed,
        folds={n: {k: v for k, v in f.items() if k not in details} for n, f in folds.items()},
        encoded=any(encoded),
        timings={"encode_s": round(encode_s, 3), "probe_s": round(probe_s, 3)},
        details=details,
    )

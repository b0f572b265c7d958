"""One task end to end: shards -> encoder -> cached embeddings -> the task type's probe(s) -> scores."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed, profiling
from .data import DataError, LeftOut, SkippedSample, clip_key, prefetch_audio, shard_files
from .data.shards import unused_shards
from .embedding_cache import EmbeddingCache, SplitEmbeddings, fingerprint
from .store import FrameSpool, Rows
from .encoders import encode_batch
from .evaluators import NEEDS_FRAMES, SplitData
from .heap import bound_heap_growth
from .protocols import Protocol, batch_slots, get_protocol, pad_to_longest
from .probing import probe_task
from .results import TaskResult
from .tasks import LabelEncoder, LabelError, TaskCard
from .tasks.audit import not_scored, repeated_samples

# clips are encoded in batches of similar length, sorted within windows of this many batches: padding falls
# from up to 1.95x the audio to about 1.1x on the mini suite's speech tasks, while the audio held waiting stays small
SORT_WINDOW_BATCHES = 8
# ... or fewer when the clips waiting hold this much audio (long clips: 8 batches of 16 one-hour clips would be 29 GB)
SORT_WINDOW_BYTES = 512 << 20


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
    on_bad_sample: str = "error",
    spool_dir: Path | None = None,
    protocol: Protocol | None = None,
) -> tuple[SplitEmbeddings, list[tuple[int, int, int]]]:
    """Encode the given shards (or every ``stride``-th clip of them); also returns each sample's place in the split.

    Frames are not kept in memory: each batch's go to a spool file in ``spool_dir`` (deleted when the result is
    dropped), and the result's frames are a view of it in the split's order, so a shard costs one batch of frames.
    The protocol says how clips are batched and padded, and which crops are kept (:mod:`xares_hf.protocols`)."""
    protocol = get_protocol(protocol)
    sampling_rate = int(encoder.sampling_rate)
    index = {f: i for i, f in enumerate(all_files or files)}
    pooled, keys, urls, metas, durations, order, skipped, left_out = [], [], [], [], [], [], [], []
    spool = FrameSpool(spool_dir) if keep_frames else None
    pending: list[tuple[int, np.ndarray]] = []  # (slot in the outputs, audio) not yet encoded
    pending_bytes = 0
    size = card.probe.batch_size_encode
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    slots = batch_slots(size)

    def flush() -> None:
        """Encode the pending clips in batches of similar length (less padding), each result into its slot; or, in
        xares 0.1.3's protocol, as one batch of consecutive clips padded to the longest, padding kept."""
        if not protocol.padded_batches:
            pending.sort(key=lambda item: item[1].shape[0])
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            names = [keys[slot] for slot, _ in chunk]
            context = f"task '{card.name}', split '{split}', samples {', '.join(repr(n) for n in names[:4])}" + (
                "..." if len(names) > 4 else "")
            waves = [audio for _, audio in chunk]
            if protocol.padded_batches:
                waves = pad_to_longest(waves)
            with profiling.phase("encoder forward"), distributed.autocast(device, mixed_precision):
                encoded = encode_batch(encoder, waves, context=context, strict_frames=card.task_type == "frame")
            profiling.note_peak("rss_while_encoding_mb", profiling.rss_mb())
            for (slot, _), clip_frames in zip(chunk, encoded):
                clip_frames = clip_frames.astype(np.float32, copy=False)
                pooled[slot] = clip_frames.mean(axis=0)
                if spool is not None:
                    spool.add(slot, clip_frames)
        pending.clear()
        nonlocal pending_bytes
        pending_bytes = 0

    def add(sample, crop: int, duration: float) -> None:
        """A sample that will be encoded: its place in the outputs, and its audio waiting for a batch."""
        nonlocal pending_bytes
        order.append((index[sample.url], sample.position, crop))
        keys.append(sample.key)
        urls.append(sample.url)
        metas.append(sample.meta)
        durations.append(duration)
        pending.append((len(pooled), sample.audio))
        pending_bytes += sample.audio.nbytes
        pooled.append(None)

    # decoding ahead in a worker pays off when the encoder leaves the CPU idle; on a CPU-only machine the two
    # compete for the same cores and it measured slower (BENCHMARKS.md)
    decoded = prefetch_audio(files, sampling_rate, card.name, split, card.data.crop_length, stride=stride,
                             background=device.type != "cpu", on_bad_sample=on_bad_sample,
                             max_duration=card.data.max_duration, resampler=protocol.resampler)
    samples = profiling.timed_iter("decode + resample", decoded)  # the wait for the next sample
    last, crop, checked, bad_label = None, 0, None, False
    for sample in tqdm(samples, desc=f"encode {card.name}/{split}", unit="clip", leave=False, disable=not distributed.is_main()):
        if isinstance(sample, LeftOut):
            left_out.append({"split": split, "file": sample.url, "key": sample.key, "reason": sample.reason})
            continue
        if isinstance(sample, SkippedSample):
            skipped.append({"split": split, "file": sample.url, "key": sample.key, "reason": sample.reason,
                            "position": sample.position})
            continue
        duration = sample.audio.shape[0] / sampling_rate
        if (sample.url, sample.position) != checked:  # a clip's crops share its label: checked, and skipped, once
            checked, bad_label = (sample.url, sample.position), False
            try:
                labels.encode(sample.meta, f"split '{split}', {sample.where}", duration=duration)
            except LabelError as err:
                if on_bad_sample == "error":
                    raise
                bad_label = True
                skipped.append({"split": split, "file": sample.url, "key": sample.key, "reason": str(err),
                                "position": sample.position})
        if bad_label:
            continue
        crop = crop + 1 if (sample.url, sample.position) == last else 0
        last = (sample.url, sample.position)
        if protocol.padded_batches:  # batches of ``size`` consecutive places, as xares 0.1.3 forms them
            kept = slots.keeps(last) or not protocol.first_crop_per_batch
            if not kept:
                left_out.append({"split": split, "file": sample.url, "key": sample.key, "reason":
                                 f"protocol {protocol.name}: an earlier crop of this clip is in the same encoding batch; "
                                 "xares 0.1.3 gives both one key and keeps only the first"})
            else:
                add(sample, crop, duration)
            if slots.batch_full():
                flush()
            continue
        add(sample, crop, duration)
        if len(pending) == SORT_WINDOW_BATCHES * size or pending_bytes >= SORT_WINDOW_BYTES:
            flush()
    flush()
    dim = int(encoder.output_dim)
    embeddings = SplitEmbeddings(
        Rows.from_array(np.stack(pooled) if pooled else np.zeros((0, dim), np.float32)),
        keys, urls, metas, np.asarray(durations), spool.frames(len(pooled), dim) if spool else None, skipped, left_out,
    )
    return embeddings, order


def shard_keys(encoder: torch.nn.Module, card: TaskCard, files: list[str], mixed_precision: str | None = None,
               protocol: Protocol | str | None = None) -> list[str]:
    """The cache key of each shard's embeddings: encoder (weights, layer, rate), task, the shard file, settings,
    and the protocol (which batches, pads and crops differently)."""
    identity = {**encoder.identity, "sampling_rate": int(encoder.sampling_rate)}
    settings = {"crop_length": card.data.crop_length, "pooling": "mean", "frames": card.task_type in NEEDS_FRAMES,
                "precision": mixed_precision or "no", "protocol": get_protocol(protocol).name}
    return [fingerprint(identity, card.name, [f], settings) for f in files]


def _encode_shard(encoder, card, split, file, key, labels, cache, mixed_precision, on_bad_sample, protocol, load=True):
    """One shard encoded whole by this process (unless the cache has it); returns (embeddings, encoded).

    With ``load=False`` a cached shard is not read (None is returned for it)."""
    if not load and cache.path(card.name, key).is_file():
        return None, False
    with profiling.phase("cache I/O"):
        cached = cache.load(card.name, key)
    if cached is not None:
        return cached, False
    with cache.lock(card.name, key):
        cached = cache.load(card.name, key)  # another run may have written it while this one waited
        if cached is not None:
            return cached, False
        part, _ = _encode(encoder, card, split, [file], labels, card.task_type in NEEDS_FRAMES,
                          mixed_precision=mixed_precision, on_bad_sample=on_bad_sample, protocol=protocol,
                          spool_dir=cache.path(card.name, key).parent)
        world, rank = distributed.world_size(), distributed.rank()
        with profiling.phase("cache I/O"):
            # the log first: once the entry exists nothing is left to write, so a run killed then leaves no temporary
            # file that no lock holder would clean (the entry's lock is never taken again for a finished shard)
            cache.write_log(card.name, key, {"encoded_per_process": [len(part) if r == rank else 0 for r in range(world)]})
            cache.save(card.name, key, part)
            part = cache.load(card.name, key) if load else None  # the maps, not the arrays just written
    return part, True


def _encode_shard_shared(encoder, card, split, file, key, labels, cache, mixed_precision, on_bad_sample, protocol) -> bool:
    """One shard encoded by all processes, every n-th clip each; the main process merges the parts."""
    world, rank = distributed.world_size(), distributed.rank()
    if cache.path(card.name, key).is_file():
        return False
    part, order = _encode(encoder, card, split, [file], labels, card.task_type in NEEDS_FRAMES, stride=(rank, world),
                          mixed_precision=mixed_precision, on_bad_sample=on_bad_sample, protocol=protocol,
                          spool_dir=cache.path(card.name, key).parent)
    cache.save(card.name, f"{key}.part{rank}-of-{world}", part, order=order)
    distributed.barrier()
    if distributed.is_main():
        with cache.lock(card.name, key):
            parts = [cache.load(card.name, f"{key}.part{r}-of-{world}", with_order=True) for r in range(world)]
            cache.write_log(card.name, key, {"encoded_per_process": [len(p[0]) for p in parts]})  # first, as above
            cache.save(card.name, key, SplitEmbeddings.merge(parts))
            for r in range(world):
                cache.path(card.name, f"{key}.part{r}-of-{world}").unlink(missing_ok=True)
    distributed.barrier()
    return True


def encode_split(
    encoder: torch.nn.Module,
    card: TaskCard,
    split: str,
    files: list[str],
    labels: LabelEncoder,
    cache: EmbeddingCache,
    mixed_precision: str | None = None,
    on_bad_sample: str = "error",
    load: bool = True,
    protocol: Protocol | str | None = None,
) -> tuple[SplitEmbeddings | None, bool]:
    """Embeddings of one split, from the cache or by encoding each shard once; True if anything was encoded.

    ``load=False`` only makes sure every shard is cached and returns ``(None, encoded)``: each shard's
    embeddings leave memory once written, so encoding memory does not grow with the data.

    Each shard is its own cache entry, so a run that was killed resumes at the first unfinished shard.
    Labels are checked while streaming, so a bad sample stops the run before more encoding is spent
    (``on_bad_sample="skip"`` leaves it out instead and records it in the split's ``skipped``).
    Under ``accelerate launch`` the processes share the work: whole shards round-robin when there are
    at least as many shards as processes, otherwise every n-th clip of each shard; each clip is encoded by
    exactly one process, and every process reads the result. In xares 0.1.3's protocol a shard is always encoded
    whole by one process: its batches are runs of consecutive clips.
    """
    if on_bad_sample not in ("error", "skip"):
        raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    protocol = get_protocol(protocol)
    keys = shard_keys(encoder, card, files, mixed_precision, protocol)
    world, rank = distributed.world_size(), distributed.rank()
    args = (labels, cache, mixed_precision, on_bad_sample, protocol)
    parts: dict[int, SplitEmbeddings] = {}
    encoded = False
    if world == 1 or len(files) >= world or protocol.padded_batches:
        for i in range(rank, len(files), world):
            part, was_encoded = _encode_shard(encoder, card, split, files[i], keys[i], *args, load=load)
            encoded |= was_encoded
            if load:
                parts[i] = part
        distributed.barrier()
    else:
        for file, key in zip(files, keys):
            encoded |= _encode_shard_shared(encoder, card, split, file, key, *args)
    if not load:
        return None, encoded
    with profiling.phase("cache I/O"):
        for i, key in enumerate(keys):
            if i not in parts:
                parts[i] = cache.load(card.name, key)
    for i, key in enumerate(keys):
        if parts[i] is None and world == 1:  # an unreadable entry was dropped by load(): encode the shard again
            parts[i], was_encoded = _encode_shard(encoder, card, split, files[i], key, *args)
            encoded |= was_encoded
    unreadable = [files[i] for i, part in parts.items() if part is None]
    if unreadable:
        raise RuntimeError(f"task '{card.name}', split '{split}': the cached embeddings of {unreadable} vanished; run again")
    embeddings = SplitEmbeddings.concat([parts[i] for i in range(len(files))])
    if embeddings.skipped and on_bad_sample == "error":
        first = embeddings.skipped[0]
        raise DataError(
            f"task '{card.name}', split '{split}', file {first['file']}, sample '{first['key']}': {first['reason']} "
            f"({len(embeddings.skipped)} bad samples in this split, left out by an earlier run with on_bad_sample='skip')"
        )
    if not len(embeddings):
        raise ValueError(f"task '{card.name}', split '{split}': the shards {files} hold no usable samples")
    return embeddings, encoded


def _result_key(card: TaskCard, entries: dict[str, list[str]], settings: dict, device: str, hop: float) -> str:
    """What a task's scores depend on beyond the embeddings' keys: the card, the probe settings, the scoring code."""
    blob = json.dumps({"card": card.model_dump(mode="json"), "entries": entries, **settings,
                       "device": torch.device(device).type, "hop": hop, "code": _scoring_code_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@functools.cache
def _scoring_code_hash() -> str:
    """A hash of the source that turns embeddings into scores, so editing a probe never reuses an old result."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("probes/*.py"), *root.glob("evaluators/*.py"), root / "scoring.py", root / "probing.py",
                        root / "tasks" / "labels.py", *root.glob("evaluate_modules/*/*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


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
    on_bad_sample: str = "error",
    seeds: int = 1,
    layer_mode: str | None = None,
    protocol: Protocol | str | None = None,
) -> TaskResult:
    """Score one task for one encoder as X-ARES does, reusing cached embeddings and finished results.

    ``files`` are the task's shards per split when the caller has already located them. A task whose
    embeddings and scores are both cached (same encoder, data, card, seed and scoring code) is not
    trained again: a run killed after it resumes with the next task. ``seeds`` trains the probes with seeds
    ``seed, seed+1, ...`` on the same embeddings; ``layer_mode`` ("all" or "weighted") needs an encoder
    loaded with ``layer="all"`` (see :mod:`xares_hf.probing`). ``protocol`` is ``"xares-hf"`` (the default) or
    ``"xares-0.1.3"`` (:mod:`xares_hf.protocols`).
    """
    protocol = get_protocol(protocol)
    bound_heap_growth()
    files = files or shard_files(card, data_dir)
    unused = [{"split": "", "file": f, "key": "", "reason": "no split or fold pattern of the card matches this shard: "
               "not used"} for f in unused_shards(card, data_dir, files)]  # the folder's, so never cached
    hop = float(encoder.hop_size_in_ms)
    entries = {split: shard_keys(encoder, card, split_files, mixed_precision, protocol)
               for split, split_files in files.items()}
    result_key = _result_key(card, entries, {"seed": seed, "seeds": seeds, "knn": knn, "layer_mode": layer_mode,
                                             "protocol": protocol.name}, device, hop)
    done = cache.load_result(card.name, result_key)
    entries_there = all(cache.path(card.name, k).is_file() for keys in entries.values() for k in keys)
    if done is not None and entries_there and (on_bad_sample == "skip" or not done.get("skipped")):
        return TaskResult(**{**done, "encoded": False, "left_out": unused + done.get("left_out", [])})

    labels = LabelEncoder(card.labels, card.name)
    started = time.perf_counter()
    data, encoded, skipped, left_out = {}, [], [], []
    with profiling.stage("encoding"):
        for split, split_files in files.items():  # every split cached first: one shard's embeddings in memory at a time
            encoded.append(encode_split(encoder, card, split, split_files, labels, cache, mixed_precision,
                                        on_bad_sample=on_bad_sample, load=False, protocol=protocol)[1])
    splits: dict[str, SplitEmbeddings] = {}
    for split, split_files in files.items():
        splits[split], again = encode_split(encoder, card, split, split_files, labels, cache, mixed_precision,
                                            on_bad_sample=on_bad_sample, protocol=protocol)
        encoded.append(again)  # an entry found unreadable on loading is encoded again
    repeated, repeats_skipped = repeated_samples(card, splits, on_bad_sample)
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
        scores = probe_task(card, data, hop, seeds=[seed + i for i in range(seeds)], knn=knn, device=device,
                            layer_mode=layer_mode, stacked_layers=int(getattr(encoder, "stacked_layers", 1)),
                            protocol=protocol)
    probe_s = time.perf_counter() - t0
    result = TaskResult(
        name=card.name,
        formal_name=card.formal_name,
        domain=card.domain,
        task_type=card.task_type,
        metric=card.metric,
        eval_weight=card.eval_weight,
        seed=seed,
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

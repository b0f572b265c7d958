"""The encoding engine: a split's shards -> the encoder -> one cache entry per shard, each shard encoded once.

:class:`SplitEncoder` owns one split: its shards' cache keys (computed once), :meth:`~SplitEncoder.ensure_cached`
(every shard encoded into the cache, this process's share under ``accelerate launch``) and
:meth:`~SplitEncoder.load` (the split's embeddings as views of the entries). :func:`encode_clips` streams clips
through the encoder in batches, as the run's protocol forms them.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed, profiling
from .data import DEFAULT_RESAMPLER, DataError, LeftOut, SkippedSample, decode_workers, prefetch_audio
from .embedding_cache import EmbeddingCache, SplitEmbeddings, fingerprint
from .encoders import encode_batch
from .task_types import task_type
from .protocols import BatchSlots, pad_to_longest
from .run_config import RunConfig
from .store import FrameSpool, Rows
from .tasks import LabelEncoder, LabelError, TaskCard

# clips are encoded in batches of similar length, sorted within windows of this many batches: padding falls
# from up to 1.95x the audio to about 1.1x on the mini suite's speech tasks, while the audio held waiting stays small
SORT_WINDOW_BATCHES = 8
# ... or fewer when the clips waiting hold this much audio (long clips: 8 batches of 16 one-hour clips would be 29 GB)
SORT_WINDOW_BYTES = 512 << 20


def encode_clips(
    encoder: torch.nn.Module,
    card: TaskCard,
    split: str,
    files: list[str],
    labels: LabelEncoder,
    config: RunConfig,
    stride: tuple[int, int] = (0, 1),
    all_files: list[str] | None = None,
    spool_dir: Path | None = None,
) -> tuple[SplitEmbeddings, list[tuple[int, int, int]]]:
    """Encode the given shards (or every ``stride``-th clip of them); also returns each sample's place in the split.

    Frames are not kept in memory: each batch's go to a spool file in ``spool_dir`` (deleted when the result is
    dropped), and the result's frames are a view of it in the split's order, so a shard costs one batch of frames.
    The protocol says how clips are batched and padded, and which crops are kept (:mod:`xares_hf.protocols`)."""
    protocol, mixed_precision, on_bad_sample = config.protocol, config.mixed_precision, config.on_bad_sample
    kind = task_type(card.task_type)
    keep_frames = kind.needs_frames
    sampling_rate = int(encoder.sampling_rate)
    index = {f: i for i, f in enumerate(all_files or files)}
    pooled, keys, urls, metas, durations, order, skipped, left_out = [], [], [], [], [], [], [], []
    spool = FrameSpool(spool_dir) if keep_frames else None
    outputs = _Outputs(pooled, spool)
    pending: list[tuple[int, np.ndarray]] = []  # (slot in the outputs, audio) not yet encoded
    pending_bytes = 0
    size = card.probe.batch_size_encode
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    slots = BatchSlots(size)  # places in xares 0.1.3's batches (its protocol only)

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
                encoded = encode_batch(encoder, waves, context=context, strict_frames=kind.strict_frames)
            profiling.note_peak("rss_while_encoding_mb", profiling.rss_mb())
            outputs.put([slot for slot, _ in chunk], encoded)
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

    workers = config.decode_workers if config.decode_workers is not None else decode_workers(device.type)
    decoded = prefetch_audio(files, sampling_rate, card.name, split, card.data.crop_length, stride=stride,
                             workers=workers, ahead=max(2 * size, 16 * workers), on_bad_sample=on_bad_sample,
                             max_duration=card.data.max_duration)
    samples = profiling.timed_iter("decode + resample", decoded)  # the wait for the next sample
    try:
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
        outputs.finish()
    finally:
        outputs.close()
    dim = int(encoder.output_dim)
    embeddings = SplitEmbeddings(
        Rows.from_array(np.stack(pooled) if pooled else np.zeros((0, dim), np.float32)),
        keys, urls, metas, np.asarray(durations), spool.frames(len(pooled), dim) if spool else None, skipped, left_out,
    )
    return embeddings, order


class _Outputs:
    """Each encoded batch pooled (and its frames spooled) in a thread while the encoder runs the next one: the
    batches are kept in order, at most two waiting, so the device does not wait for the host's copies and writes."""

    def __init__(self, pooled: list, spool: FrameSpool | None) -> None:
        self.pooled, self.spool = pooled, spool
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="xares-hf outputs")
        self.waiting: deque[Future] = deque()

    def put(self, slots: list[int], encoded: list[np.ndarray]) -> None:
        while len(self.waiting) >= 2:
            self.waiting.popleft().result()
        self.waiting.append(self.thread.submit(self._keep, slots, encoded))

    def _keep(self, slots: list[int], encoded: list[np.ndarray]) -> None:
        for slot, frames in zip(slots, encoded):
            frames = frames.astype(np.float32, copy=False)
            self.pooled[slot] = frames.mean(axis=0)
            if self.spool is not None:
                self.spool.add(slot, frames)

    def finish(self) -> None:
        """Wait for every batch (an error of one, e.g. a full disk, is raised here)."""
        while self.waiting:
            self.waiting.popleft().result()

    def close(self) -> None:
        self.thread.shutdown(wait=True, cancel_futures=True)


def shard_keys(encoder: torch.nn.Module, card: TaskCard, files: list[str], config: RunConfig) -> list[str]:
    """The cache key of each shard's embeddings: encoder (weights, layer, rate), task, the shard file, settings,
    the protocol (which batches, pads and crops differently) and the resampler."""
    identity = {**encoder.identity, "sampling_rate": int(encoder.sampling_rate)}
    settings = {"crop_length": card.data.crop_length, "pooling": "mean", "frames": task_type(card.task_type).needs_frames,
                "precision": config.mixed_precision or "no", "protocol": config.protocol.name,
                "resampler": DEFAULT_RESAMPLER}
    return [fingerprint(identity, card.name, [f], settings) for f in files]


class SplitEncoder:
    """One split of a task for one encoder: each shard is its own cache entry, encoded once.

    A run that was killed resumes at the first unfinished shard. Labels are checked while streaming, so a bad
    sample stops the run before more encoding is spent (``on_bad_sample="skip"`` leaves it out and records it
    in the split's ``skipped``). Under ``accelerate launch`` the processes share the work: whole shards
    round-robin when there are at least as many shards as processes, otherwise every n-th clip of each shard;
    each clip is encoded by exactly one process, and every process reads the result. In xares 0.1.3's protocol a
    shard is always encoded whole by one process: its batches are runs of consecutive clips.
    """

    def __init__(self, encoder: torch.nn.Module, card: TaskCard, split: str, files: list[str], labels: LabelEncoder,
                 cache: EmbeddingCache, config: RunConfig) -> None:
        self.encoder, self.card, self.split, self.files = encoder, card, split, list(files)
        self.labels, self.cache, self.config = labels, cache, config
        self.keys = shard_keys(encoder, card, self.files, config)
        world = distributed.world_size()
        self.whole_shards = world == 1 or len(self.files) >= world or config.protocol.padded_batches

    def is_cached(self) -> bool:
        return all(self.cache.path(self.card.name, k).is_file() for k in self.keys)

    def ensure_cached(self) -> bool:
        """Every shard of the split in the cache (this process's share encoded); True if anything was encoded.
        Nothing is read back, so encoding memory does not grow with the data."""
        world, rank = distributed.world_size(), distributed.rank()
        encoded = False
        if self.whole_shards:
            for i in range(rank, len(self.files), world):
                encoded |= self._encode_shard(i)
            distributed.barrier()
        else:
            for i in range(len(self.files)):
                encoded |= self._encode_shard_shared(i)
        return encoded

    def load(self) -> tuple[SplitEmbeddings, bool]:
        """The split's embeddings (views of the cache entries) after :meth:`ensure_cached`; True if an entry found
        unreadable on loading had to be encoded again."""
        name, again = self.card.name, False
        with profiling.phase("cache I/O"):
            parts = [self.cache.load(name, key) for key in self.keys]
        for i, part in enumerate(parts):
            if part is None and distributed.world_size() == 1:  # load() dropped an unreadable entry: encode it again
                again |= self._encode_shard(i)
                parts[i] = self.cache.load(name, self.keys[i])
        unreadable = [self.files[i] for i, part in enumerate(parts) if part is None]
        if unreadable:
            raise RuntimeError(f"task '{name}', split '{self.split}': the cached embeddings of {unreadable} vanished; run again")
        embeddings = SplitEmbeddings.concat(parts)
        if embeddings.skipped and self.config.on_bad_sample == "error":
            first = embeddings.skipped[0]
            raise DataError(
                f"task '{name}', split '{self.split}', file {first['file']}, sample '{first['key']}': {first['reason']} "
                f"({len(embeddings.skipped)} bad samples in this split, left out by an earlier run with on_bad_sample='skip')"
            )
        if not len(embeddings):
            raise ValueError(f"task '{name}', split '{self.split}': the shards {self.files} hold no usable samples")
        return embeddings, again

    def _encode_shard(self, i: int) -> bool:
        """Shard ``i`` encoded whole by this process unless the cache has it; True if it was encoded here."""
        cache, name, key = self.cache, self.card.name, self.keys[i]
        if cache.path(name, key).is_file():
            return False
        with cache.lock(name, key):
            if cache.path(name, key).is_file():  # another run may have written it while this one waited
                return False
            part, _ = encode_clips(self.encoder, self.card, self.split, [self.files[i]], self.labels, self.config,
                                   spool_dir=cache.path(name, key).parent)
            world, rank = distributed.world_size(), distributed.rank()
            with profiling.phase("cache I/O"):
                # the log first: once the entry exists nothing is left to write, so a run killed then leaves no
                # temporary file that no lock holder would clean (the entry's lock is never taken again once done)
                cache.write_log(name, key, {"encoded_per_process": [len(part) if r == rank else 0 for r in range(world)]})
                cache.save(name, key, part)
        return True

    def _encode_shard_shared(self, i: int) -> bool:
        """Shard ``i`` encoded by all processes, every n-th clip each; the main process merges the parts."""
        cache, name, key = self.cache, self.card.name, self.keys[i]
        world, rank = distributed.world_size(), distributed.rank()
        if cache.path(name, key).is_file():
            return False
        part, order = encode_clips(self.encoder, self.card, self.split, [self.files[i]], self.labels, self.config,
                                   stride=(rank, world), spool_dir=cache.path(name, key).parent)
        cache.save(name, f"{key}.part{rank}-of-{world}", part, order=order)
        distributed.barrier()
        if distributed.is_main():
            with cache.lock(name, key):
                parts = [cache.load(name, f"{key}.part{r}-of-{world}", with_order=True) for r in range(world)]
                cache.write_log(name, key, {"encoded_per_process": [len(p[0]) for p in parts]})  # first, as above
                cache.save(name, key, SplitEmbeddings.merge(parts))
                for r in range(world):
                    cache.path(name, f"{key}.part{r}-of-{world}").unlink(missing_ok=True)
        distributed.barrier()
        return True

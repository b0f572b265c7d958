"""Decode ahead of the encoder: a split's rows are read in a thread and decoded by a pool of worker processes.

Reading tar members (local disk or the Hub), decoding and resampling then run while the encoder works on earlier
batches, on the other cores. Results come back in the split's order (the cache and the labels depend on it),
at most ``ahead`` samples in advance, so memory does not grow with the split. A bad sample comes back as such
and is reported as in :func:`.iter_audio`, with task, shard and key; an error of the reader or a worker (a shard
that cannot be read, no decoder installed) is raised here as it was raised there. The pool is started once per
process and reused by every split: workers are forked, which costs milliseconds, and import nothing new.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import queue
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Iterator

from .audio_dataset import AudioSample, LeftOut, SkippedSample, iter_audio
from .decoding import DEFAULT_RESAMPLER

_pools: dict[int, ProcessPoolExecutor] = {}
_END = object()


def decode_workers(device_type: str, processes_per_node: int | None = None) -> int:
    """How many decode workers a process gets by default: none when the encoder runs on the CPU (decoding in
    workers then competes with the encoder for the same cores and measured slower, BENCHMARKS.md), else the
    cores this process may use, shared among the node's processes (``LOCAL_WORLD_SIZE`` under ``accelerate
    launch``), less one for the process itself, at most 8."""
    if device_type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_node = processes_per_node or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(8, cores // max(1, per_node) - 1))


def prefetch_audio(
    files: list[str],
    sampling_rate: int,
    task: str,
    split: str,
    crop_length: float | None = None,
    stride: tuple[int, int] = (0, 1),
    workers: int = 1,
    ahead: int = 64,
    on_bad_sample: str = "error",
    max_duration: float | None = None,
    resampler: str = DEFAULT_RESAMPLER,
) -> Iterator[AudioSample | SkippedSample | LeftOut]:
    """``iter_audio``, with the rows decoded by ``workers`` processes up to ``ahead`` samples in advance (in this
    process, one by one, with ``workers=0``). Same samples, same order, same errors."""
    if workers < 0 or ahead < 1:
        raise ValueError(f"workers must be >= 0 and ahead >= 1, got workers={workers}, ahead={ahead}")
    kwargs = dict(files=files, sampling_rate=sampling_rate, task=task, split=split, crop_length=crop_length,
                  stride=stride, on_bad_sample=on_bad_sample, max_duration=max_duration, resampler=resampler)
    if workers == 0:
        return iter_audio(**kwargs)
    return iter_audio(**kwargs, decode_map=lambda fn, jobs: _ordered_map(_pool(workers), fn, jobs, ahead))


def _quiet_worker() -> None:
    import torch

    torch.set_num_threads(1)  # decoding needs one core each; the encoder keeps the rest


def _pool(workers: int) -> ProcessPoolExecutor:
    """This process's pool of ``workers`` decode processes, started (all of them, from this thread) on first use."""
    pool = _pools.get(workers)
    if pool is None:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker)
        for future in [pool.submit(os.getpid) for _ in range(workers)]:
            future.result()
        _pools[workers] = pool
    return pool


@atexit.register
def _shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _pools.clear()


def _ordered_map(pool: ProcessPoolExecutor, fn: Callable, jobs: Iterator[tuple], ahead: int) -> Iterator:
    """``fn(*job[1:])`` of each ``("decode", ...)`` job in the pool, a ``("pass", item)`` job's item as it is, in
    the jobs' order. A thread draws the jobs (reading the shards) and submits them, at most ``ahead`` unfinished."""
    waiting: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def feed() -> None:
        try:
            for job in jobs:
                item = pool.submit(fn, *job[1:]) if job[0] == "decode" else job[1]
                if not put(item):
                    return
        except BaseException as err:  # the reader's error (a shard that cannot be read) goes to the consumer in order
            put(_Raised(err))
            return
        put(_END)

    reader = threading.Thread(target=feed, name="xares-hf shard reader", daemon=True)
    reader.start()
    try:
        while True:
            item = waiting.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item.result() if isinstance(item, Future) else item
    finally:
        stop.set()
        while not waiting.empty():  # unblock the reader and drop what was decoded for nothing
            item = waiting.get_nowait()
            if isinstance(item, Future):
                item.cancel()
        reader.join()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error

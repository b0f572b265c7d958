"""Wall time per phase of a run (decode, encoder forward, cache I/O, probe training, kNN, scoring).

Phases nest: time spent in an inner phase is not counted in the outer one, so the phases add up to the
time measured. ``scripts/benchmark.py`` reads them; they cost two ``perf_counter`` calls per entry.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

_totals: dict[str, float] = defaultdict(float)
_stack: list[list] = []  # [phase, start, time spent in children]
_peaks: dict[str, float] = defaultdict(float)
_stage: list[str | None] = [None]


@contextmanager
def phase(name: str) -> Iterator[None]:
    start = time.perf_counter()
    _stack.append([name, start, 0.0])
    try:
        yield
    finally:
        _, begun, children = _stack.pop()
        elapsed = time.perf_counter() - begun
        _totals[name] += elapsed - children
        if _stack:
            _stack[-1][2] += elapsed


def timed_iter(name: str, iterable):
    """Iterate, counting the time spent producing each item (e.g. streaming and decoding) as ``name``."""
    iterator = iter(iterable)
    while True:
        with phase(name):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Mark a stage of a task's run ("encoding", "probes"); a memory sampler tags its samples with it."""
    previous = _stage[0]
    _stage[0] = name
    try:
        yield
    finally:
        _stage[0] = previous


def current_stage() -> str | None:
    """The stage running now, or None outside :func:`stage` (read by ``scripts/paper_scale.py``'s sampler)."""
    return _stage[0]


def totals() -> dict[str, float]:
    return dict(_totals)


def reset() -> None:
    _totals.clear()
    _peaks.clear()



def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def note_peak(name: str, value: float) -> None:
    """Keep the largest ``value`` seen under ``name`` (e.g. resident memory while encoding)."""
    _peaks[name] = max(_peaks[name], value)


def peaks() -> dict[str, float]:
    return dict(_peaks)

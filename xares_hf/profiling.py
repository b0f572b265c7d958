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


def totals() -> dict[str, float]:
    return dict(_totals)


def reset() -> None:
    _totals.clear()

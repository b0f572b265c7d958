"""X-ARES' weighted average of normalised task scores, and its spread over seeds: the one implementation that
xares-hf (``xares_hf.results``, through ``xares_hf.leaderboard_app``) and the leaderboard Space both use. It lives in
the Space's folder so that the Space, deployed alone, needs nothing else; the arithmetic is the published
``xares_score`` evaluate module's, passed in as ``compute`` (each side loads the module its own way).
"""

from __future__ import annotations

import statistics
from typing import Callable, Sequence

Compute = Callable[..., dict]  # xares_score's compute(scores=..., weights=...) -> {"score": ..., "normalised_scores": ...}


def weighted_average(scores: Sequence[float | None], weights: Sequence[float], compute: Compute) -> float | None:
    """The weighted mean of the scores that count (a score, and a weight above zero); None when none does."""
    pairs = [(s, w) for s, w in zip(scores, weights) if s is not None and w]
    if not pairs:
        return None
    return float(compute(scores=[s for s, _ in pairs], weights=[w for _, w in pairs])["score"])


def seed_spread(per_seed: Sequence[Sequence[float | None]], weights: Sequence[float], compute: Compute) -> float | None:
    """The sample standard deviation over seeds of the weighted average: ``per_seed[i]`` holds each task's score
    with seed ``i``. None with fewer than two seeds, or when a seed's average does not exist."""
    if len(per_seed) < 2:
        return None
    averages = [weighted_average(scores, weights, compute) for scores in per_seed]
    return None if None in averages else statistics.stdev(averages)

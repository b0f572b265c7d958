"""Built-in task suites that xares-hf generates itself, so it runs with no download.

``xares-mini`` (the default) is real audio from Debian packages for every task type; the synthetic
suite is a few seconds of generated signals that the tests use for pipeline mechanics.
"""

from __future__ import annotations

from pathlib import Path

from ..paths import default_cache_dir
from .mini import SUITE_VERSION, SuiteBuildError, build_mini_suite
from .synthetic import build_synthetic_suite

DEFAULT_SIZE = "mini"


def suite_dir(size: str = DEFAULT_SIZE, seed: int = 0) -> Path:
    """Where the built-in suite of a size lives: ``<cache>/suites/xares-mini-<size>-seed<seed>-v<version>``."""
    return default_cache_dir() / "suites" / f"xares-mini-{size}-seed{seed}-v{SUITE_VERSION}"


def ensure_suite(size: str = DEFAULT_SIZE, seed: int = 0) -> Path:
    """The data folder of xares-mini, built on first use; its cards are in ``<folder>/cards``."""
    return build_mini_suite(suite_dir(size, seed), size=size, seed=seed)


__all__ = ["DEFAULT_SIZE", "SuiteBuildError", "build_mini_suite", "build_synthetic_suite", "ensure_suite", "suite_dir"]

"""Built-in task suites that xares-hf generates itself, so it runs with no download."""

from __future__ import annotations

from pathlib import Path

from ..embedding_cache import default_cache_dir
from .synthetic import build_synthetic_suite

DEFAULT_SUITE = "mini"
SUITE_VERSION = 1  # bump when the generator changes, so a stale built suite is never reused


def suite_dir(size: str = DEFAULT_SUITE) -> Path:
    return default_cache_dir() / "suites" / f"synthetic-{size}-v{SUITE_VERSION}"


def ensure_suite(size: str = DEFAULT_SUITE, seed: int = 0) -> Path:
    """The data folder of the built-in suite, built on first use; its cards are in ``<folder>/cards``."""
    folder = suite_dir(size)
    if not (folder / "BUILT").is_file():
        build_synthetic_suite(folder, size=size, seed=seed)
    return folder


__all__ = ["DEFAULT_SUITE", "build_synthetic_suite", "ensure_suite", "suite_dir"]

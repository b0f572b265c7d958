"""Where xares-hf keeps things by default: one cache root, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$XARES_HF_CACHE`` or ``$HF_HOME/xares_hf`` (``~/.cache/huggingface/xares_hf``)."""
    if os.environ.get("XARES_HF_CACHE"):
        return Path(os.environ["XARES_HF_CACHE"]).expanduser()
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    return hf_home / "xares_hf"


def default_data_dir() -> Path:
    """Where task data is read from and downloaded to: ``$XARES_HF_DATA`` or ``<cache>/data``."""
    if os.environ.get("XARES_HF_DATA"):
        return Path(os.environ["XARES_HF_DATA"]).expanduser()
    return default_cache_dir() / "data"

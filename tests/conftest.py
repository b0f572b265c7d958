import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory) -> Path:
    """The built-in synthetic suite at its 'tiny' size, built once per session; returns its data folder."""
    from xares_hf.suites import build_synthetic_suite

    folder = tmp_path_factory.mktemp("suite")
    build_synthetic_suite(folder, size="tiny", seed=0)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    from helpers import save_tiny_model

    root = tmp_path_factory.mktemp("models")
    return {kind: save_tiny_model(kind, root / kind) for kind in ("wav2vec2", "hubert", "whisper")}

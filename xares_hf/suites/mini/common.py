"""What every xares-mini task builder shares: sizes, seeding, tool checks, and writing shards + a card."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ...data import write_shards

SR = 16_000  # every mini clip is stored at 16 kHz mono FLAC
SIZES = {"tiny": 0.25, "mini": 1.0}  # scale of the number of clips per task


class SuiteBuildError(RuntimeError):
    """A system package or tool the suite needs is missing; the message says how to install it."""


@dataclass
class Sample:
    key: str
    audio: np.ndarray
    meta: Any
    sr: int = SR


@dataclass
class TaskBuild:
    """What a builder returns: the task's card (without data patterns), its samples per split, its sources."""

    card: dict
    splits: dict[str, list[Sample]]
    sources: list[dict] = field(default_factory=list)  # {"name", "package", "licence"} of the audio material


def count(size: str, n: int, minimum: int = 1) -> int:
    """``n`` clips at size 'mini', scaled for other sizes."""
    if size not in SIZES:
        raise ValueError(f"unknown suite size '{size}'; choose one of {', '.join(SIZES)}")
    return max(minimum, int(round(n * SIZES[size])))


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends only on the seed and the names (stable across runs and processes)."""
    digest = hashlib.sha256(":".join([str(seed), *names]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def require(tool: str, package: str) -> str:
    """Path of a command-line tool, or a :class:`SuiteBuildError` saying which Debian package provides it."""
    path = shutil.which(tool)
    if path is None:
        raise SuiteBuildError(
            f"'{tool}' is not installed; it comes with the Debian package '{package}': "
            f"sudo apt-get install {package}  (scripts/setup.sh installs it when run as root)"
        )
    return path


def require_file(path: str | Path, package: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise SuiteBuildError(f"{path} is missing; it comes with the Debian package '{package}': sudo apt-get install {package}")
    return path


def resample(audio: np.ndarray, sr: int, target: int = SR) -> np.ndarray:
    """Band-limited resampling (polyphase, scipy) to the suite's rate, mono float32."""
    from math import gcd

    from scipy.signal import resample_poly

    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if sr != target:
        g = gcd(sr, target)
        audio = resample_poly(audio, target // g, sr // g)
    return audio.astype(np.float32)


def normalise(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    top = float(np.abs(audio).max()) if audio.size else 0.0
    return (audio * (peak / top)).astype(np.float32) if top > 0 else audio.astype(np.float32)


def write_task(out_dir: Path, build: TaskBuild) -> dict:
    """Write ``<out>/<name>/<split>-000000.tar`` shards (FLAC) and ``<out>/cards/<name>.yaml``; return the card."""
    name = build.card["name"]
    folder = Path(out_dir) / name
    if folder.exists():
        shutil.rmtree(folder)
    for split, samples in build.splits.items():
        if not samples:
            raise ValueError(f"mini task '{name}': split '{split}' has no samples")
        write_shards(((s.key, s.audio, s.sr, s.meta) for s in samples), folder / f"{split}-%06d.tar", fmt="flac")
    card = dict(build.card)
    card.setdefault("data", {})
    card["data"] = {"splits": {s: f"{s}-*.tar" for s in ("train", "valid", "test")}, **card["data"]}
    card["eval_weight"] = len(build.splits["test"])
    cards = Path(out_dir) / "cards"
    cards.mkdir(parents=True, exist_ok=True)
    (cards / f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True))
    return card


def clip_card(name: str, formal_name: str, domain: str, description: str, field: str, classes: list[str], **probe: Any) -> dict:
    """The card of a single-label clip classification task (accuracy, linear probe and kNN)."""
    return {
        "name": name,
        "formal_name": formal_name,
        "domain": domain,
        "task_type": "clip",
        "metric": "accuracy",
        "description": description,
        "labels": {"kind": "class_name", "field": field, "num_classes": len(classes), "classes": list(classes)},
        "probe": {"epochs": 20, "learning_rate": 0.005, "batch_size": 32, "batch_size_encode": 16, **probe},
        "knn": True,
    }

"""The built-in default suite (for now synthetic signals): small clip tasks written as WebDataset shards + cards.

It exercises the same path as the paper tasks (shards, cards, splits and folds, resampling and
down-mixing) and needs no download. Deterministic: the same seed and size give the same shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..data import write_shards

SIZES = {"tiny": (6, 3, 3), "mini": (24, 8, 8)}  # clips per class: train, valid, test
NOTES = ["C", "D", "E", "F", "G", "A"]
NOISES = ["white", "pink", "brown", "blue"]
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410), "u": (300, 870, 2240)}


def _tone(rng: np.random.Generator, note: int, sr: int) -> np.ndarray:
    semitone = [0, 2, 4, 5, 7, 9][note]
    f0 = 261.63 * 2 ** (semitone / 12) * 2.0 ** rng.integers(-1, 2)
    t = np.arange(int(sr * rng.uniform(0.6, 1.2))) / sr
    partials = rng.uniform(0.1, 1.0, size=5) / np.arange(1, 6)
    wave = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 2 * np.pi)) for k, a in enumerate(partials))
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t * rng.uniform(0.5, 3.0))
    return _norm(wave * envelope + 0.02 * rng.standard_normal(t.size), rng)


def _noise(rng: np.random.Generator, colour: int, sr: int) -> np.ndarray:
    n = int(sr * rng.uniform(0.8, 1.2))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / sr), 1.0)
    spectrum *= freqs ** [0.0, -0.5, -1.0, 0.5][colour]
    mono = _norm(np.fft.irfft(spectrum, n), rng)
    return np.stack([mono, np.roll(mono, 7)], axis=1)  # stereo: the loader must down-mix


def _vowel(rng: np.random.Generator, vowel: int, sr: int) -> np.ndarray:
    """Harmonics of a random pitch through the vowel's three formant resonators (parallel formant synthesis)."""
    from scipy.signal import lfilter

    t = np.arange(int(sr * rng.uniform(0.5, 1.0))) / sr
    f0 = rng.uniform(90, 250)
    source = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, int(4000 / f0)))
    r = np.exp(-np.pi * 80 / sr)
    wave = 0.0
    for gain, formant in zip((1.0, 0.5, 0.25), list(VOWELS.values())[vowel]):
        theta = 2 * np.pi * formant * rng.uniform(0.95, 1.05) / sr
        wave = wave + gain * lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], source)
    return _norm(wave + 0.005 * rng.standard_normal(t.size), rng)


def _norm(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.9)).astype(np.float32)


TASKS = {
    "synth_pitch": dict(
        formal_name="Synthetic pitch class",
        domain="music",
        classes=NOTES,
        make=_tone,
        sr=16_000,
        fmt="flac",
        folds=None,
        description="Harmonic tones of six pitch classes in three octaves with random timbre; label = pitch class.",
    ),
    "synth_noise": dict(
        formal_name="Synthetic noise colour",
        domain="sound",
        classes=NOISES,
        make=_noise,
        sr=44_100,
        fmt="wav",
        folds=[0, 1, 2],
        description="White, pink, brown and blue noise, stereo 44.1 kHz WAV (tests resampling and down-mix), 3 folds.",
    ),
    "synth_vowel": dict(
        formal_name="Synthetic vowels",
        domain="speech",
        classes=list(VOWELS),
        make=_vowel,
        sr=16_000,
        fmt="flac",
        folds=None,
        description="Five vowels from a pulse train through formant resonators at random pitch; label = vowel.",
    ),
}


def build_synthetic_suite(out_dir: str | Path, size: str = "mini", seed: int = 0) -> Path:
    """Write every synthetic task to ``<out_dir>/<task>/`` and its card to ``<out_dir>/cards/``; return the cards folder."""
    if size not in SIZES:
        raise ValueError(f"unknown suite size '{size}'; choose one of {', '.join(SIZES)}")
    out = Path(out_dir)
    cards = out / "cards"
    cards.mkdir(parents=True, exist_ok=True)
    n_train, n_valid, n_test = SIZES[size]
    for t_index, (name, spec) in enumerate(TASKS.items()):
        rng = np.random.default_rng([seed, t_index])
        classes = spec["classes"]
        if spec["folds"]:
            per_fold = (n_train + n_valid + n_test) // len(spec["folds"])
            groups = {f"fold{f}": (f"{name}-fold{f}-%03d.tar", per_fold) for f in spec["folds"]}
        else:
            groups = {s: (f"{s}-%03d.tar", n) for s, n in zip(("train", "valid", "test"), (n_train, n_valid, n_test))}
        for group, (pattern, count) in groups.items():
            samples = []
            for c, label in enumerate(classes):
                for i in range(count):
                    samples.append((f"{group}_{label}_{i:03d}", spec["make"](rng, c, spec["sr"]), spec["sr"], {"label": label}))
            order = rng.permutation(len(samples))
            write_shards((samples[i] for i in order), out / name / pattern, fmt=spec["fmt"], max_count=200)
        data = (
            {"folds": spec["folds"], "fold_pattern": f"{name}-fold{{fold}}-*.tar"}
            if spec["folds"]
            else {"splits": {s: f"{s}-*.tar" for s in ("train", "valid", "test")}}
        )
        card = {
            "name": name,
            "formal_name": spec["formal_name"],
            "domain": spec["domain"],
            "task_type": "clip",
            "metric": "accuracy",
            "eval_weight": len(classes) * (n_test if not spec["folds"] else per_fold * len(spec["folds"])),
            "knn": True,
            "description": spec["description"],
            "data": data,
            "labels": {"kind": "class_name", "field": "label", "num_classes": len(classes), "classes": classes},
            "probe": {"epochs": 20, "learning_rate": 0.01, "batch_size": 16, "batch_size_encode": 16},
        }
        (cards / f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    (out / "BUILT").write_text(f"size={size} seed={seed}\n")
    return cards

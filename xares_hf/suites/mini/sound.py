"""xares-mini sound tasks from ufoai-sound's real recorded effects: classes, events, tags and captions.

Clip classes are split by source recording, so test clips come from recordings never heard in training.
"""

from __future__ import annotations

import io
import zipfile
from functools import lru_cache

import numpy as np
import soundfile as sf

from .common import SR, Sample, TaskBuild, clip_card, count, normalise, require_file, resample, rng_for

PK3 = "/usr/share/games/ufoai/base/0snd.pk3"
SOURCES = [{
    "name": "ufoai-sound (UFO: Alien Invasion sound effects)",
    "package": "ufoai-sound",
    "licence": "per file: GPL-2+, CC-BY-3.0, CC-BY-SA-3.0 or public domain (see /usr/share/doc/ufoai-sound/copyright)",
}]

# category -> predicates on the path inside the archive
CATEGORIES = {
    "footsteps": lambda p: p.startswith("sound/footsteps/") and not any(w in p for w in ("splash", "water", "crouch", "stand")),
    "gunshot": lambda p: p.startswith("sound/weapons/bullet-"),
    "explosion": lambda p: p.startswith("sound/weapons/explosion"),
    "laser": lambda p: p.startswith(("sound/weapons/laser-", "sound/weapons/plasma-", "sound/weapons/ptl-")),
    "glass": lambda p: p.startswith("sound/misc/breakglass"),
    "wood": lambda p: p.startswith("sound/misc/breakwood"),
    "door": lambda p: p.startswith("sound/doors/"),
    "fire": lambda p: p.startswith(("sound/ambience/fire", "sound/ambience/smallfire", "sound/weapons/flamer")),
    "water": lambda p: p.startswith(("sound/ambience/water", "sound/footsteps/splash", "sound/footsteps/water")),
    "scream": lambda p: p.startswith(("sound/civilians/", "sound/soldiers/")),
    "machine": lambda p: p.startswith("sound/ambience/") and any(w in p for w in ("machinery", "engine", "generator", "hum", "droning", "turbine", "pump")),
    "thunder": lambda p: p.startswith("sound/ambience/thunder"),
}
PHRASES = {
    "footsteps": ["footsteps", "someone walking", "steps on the ground"],
    "gunshot": ["a gunshot", "a gun firing", "shots being fired"],
    "explosion": ["an explosion", "a loud blast", "something exploding"],
    "laser": ["a laser weapon", "a sci-fi blaster", "an energy weapon firing"],
    "glass": ["glass breaking", "a window shattering", "shattering glass"],
    "door": ["a door", "a door opening or closing", "a creaking door"],
    "scream": ["a person screaming", "someone crying out in pain", "a scream"],
    "fire": ["a fire crackling", "burning flames", "crackling fire"],
    "water": ["water splashing", "running water", "splashing water"],
    "machine": ["a humming machine", "machinery droning", "an engine running"],
}


@lru_cache(maxsize=1)
def recordings() -> dict[str, list[tuple[str, np.ndarray]]]:
    """Category -> [(file name, 16 kHz mono audio)] decoded from the ufoai-sound archive."""
    archive = zipfile.ZipFile(require_file(PK3, "ufoai-sound"))
    found: dict[str, list[tuple[str, np.ndarray]]] = {c: [] for c in CATEGORIES}
    for path in sorted(archive.namelist()):
        category = next((c for c, match in CATEGORIES.items() if path.endswith(".ogg") and match(path)), None)
        if category is None:
            continue
        audio, sr = sf.read(io.BytesIO(archive.read(path)), dtype="float32")
        audio = resample(audio, sr, SR)
        if audio.size > SR // 10 and np.abs(audio).max() > 1e-3:
            found[category].append((path.rsplit("/", 1)[-1].removesuffix(".ogg"), audio))
    return found


def _file_splits(rng: np.random.Generator, items: list) -> dict[str, list]:
    order = [items[i] for i in rng.permutation(len(items))]
    n_test = max(1, round(len(order) * 0.25))
    n_valid = max(1, round(len(order) * 0.2))
    return {"test": order[:n_test], "valid": order[n_test : n_test + n_valid], "train": order[n_test + n_valid :]}


def _variant(rng: np.random.Generator, audio: np.ndarray, seconds: float) -> np.ndarray:
    """A random excerpt of at most ``seconds``, at a random speed (+-8 %) and level."""
    from scipy.signal import resample_poly

    factor = int(rng.integers(92, 109))
    audio = resample_poly(audio, 100, factor).astype(np.float32)
    limit = int(seconds * SR)
    if audio.size > limit:
        start = int(rng.integers(0, audio.size - limit))
        audio = audio[start : start + limit]
    return normalise(audio, float(rng.uniform(0.2, 0.9)))


def _active_span(audio: np.ndarray) -> tuple[float, float]:
    """First and last 10 ms frame whose RMS exceeds 5 % of the peak RMS, in seconds."""
    frames = audio[: audio.size // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(axis=1))
    on = np.flatnonzero(rms > 0.05 * rms.max()) if rms.size and rms.max() > 0 else np.array([], int)
    if not on.size:
        return 0.0, audio.size / SR
    return on[0] * 0.01, (on[-1] + 1) * 0.01


def _noise_floor(rng: np.random.Generator, n: int) -> np.ndarray:
    return (float(rng.uniform(0.001, 0.004)) * rng.standard_normal(n)).astype(np.float32)


def build_sounds(size: str, seed: int) -> TaskBuild:
    """Clip classification of ten sound categories; test clips come from unseen recordings."""
    classes = ["footsteps", "gunshot", "explosion", "laser", "glass", "wood", "door", "fire", "water", "scream"]
    rng = rng_for(seed, "sounds")
    per_file = {"train": count(size, 4, 1), "valid": count(size, 3, 1), "test": count(size, 3, 1)}
    splits: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    for category in classes:
        for split, files in _file_splits(rng, recordings()[category]).items():
            for name, audio in files:
                for _ in range(per_file[split]):
                    clip = _variant(rng, audio, 3.0)
                    clip = clip + _noise_floor(rng, clip.size)
                    splits[split].append(Sample(f"{split}_{len(splits[split]):05d}", clip, {"sound": category, "source": name}))
    card = clip_card("mini_sounds", "Mini sound classes (ufoai-sound)", "sound",
                     "Ten categories of real recorded sound effects; test clips come from recordings unseen in training.", "sound", classes)
    return TaskBuild(card, splits, SOURCES)


def _scene(rng: np.random.Generator, pools: dict[str, list], classes: list[str], n_events: int, seconds: float):
    """Events of distinct classes placed at random onsets over a noise floor; returns audio and events."""
    n = int(seconds * SR)
    mix = _noise_floor(rng, n)
    events = []
    for category in rng.choice(classes, size=n_events, replace=False):
        for _ in range(10):  # an excerpt of a long recording can be silent: draw again
            name, source = pools[category][int(rng.integers(len(pools[category])))]
            clip = _variant(rng, source, min(2.0, seconds / 2))
            if clip.size >= SR // 10 and np.abs(clip).max() > 0.05:
                break
        start = int(rng.integers(0, n - clip.size)) if clip.size < n else 0
        clip = clip[: n - start]
        mix[start : start + clip.size] += clip
        on, off = _active_span(clip)
        events.append({"onset": round(float(start / SR + on), 3), "offset": round(float(start / SR + off), 3), "label": str(category), "source": name})
    return normalise(mix, float(rng.uniform(0.5, 0.9))), sorted(events, key=lambda e: e["onset"])


def _scenes(name: str, size: str, seed: int, classes: list[str], n: dict, events: tuple[int, int], seconds: float):
    rng = rng_for(seed, name)
    pools = {c: _file_splits(rng_for(seed, name, c), recordings()[c]) for c in classes}
    out = {}
    for split, total in n.items():
        split_pools = {c: pools[c][split] for c in classes}
        out[split] = [_scene(rng, split_pools, classes, int(rng.integers(events[0], events[1] + 1)), seconds) for _ in range(count(size, total, 8))]
    return out


def build_sound_events(size: str, seed: int) -> TaskBuild:
    """Frame-level sound event detection in 6 s scenes of one to three events (DESED-like)."""
    classes = ["gunshot", "explosion", "glass", "door", "scream", "footsteps"]
    scenes = _scenes("sound_events", size, seed, classes, {"train": 120, "valid": 40, "test": 40}, (1, 3), 6.0)
    splits = {s: [Sample(f"{s}_{i:05d}", a, ev) for i, (a, ev) in enumerate(items)] for s, items in scenes.items()}
    card = {
        "name": "mini_sound_events",
        "formal_name": "Mini sound event detection (ufoai-sound)",
        "domain": "sound",
        "task_type": "frame",
        "metric": "segmentf1_macro",
        "metric_args": {"segment_length_in_s": 1.0},
        "description": "Six-second scenes with one to three real sound events at known onsets and offsets.",
        "labels": {"kind": "events", "field": "label", "onset_field": "onset", "offset_field": "offset",
                   "num_classes": len(classes), "classes": classes},
        "probe": {"epochs": 30, "learning_rate": 0.005, "batch_size": 16, "batch_size_encode": 8},
        "knn": False,
    }
    return TaskBuild(card, splits, SOURCES)


def build_sound_tags(size: str, seed: int) -> TaskBuild:
    """Multi-label tagging of four-second mixtures of one to three sound categories (FSD50k-like)."""
    classes = ["fire", "water", "machine", "gunshot", "scream", "footsteps", "glass", "door"]
    scenes = _scenes("sound_tags", size, seed, classes, {"train": 160, "valid": 50, "test": 50}, (1, 3), 4.0)
    splits = {
        s: [Sample(f"{s}_{i:05d}", a, {"tags": ";".join(sorted({e["label"] for e in ev}))}) for i, (a, ev) in enumerate(items)]
        for s, items in scenes.items()
    }
    card = {
        "name": "mini_sound_tags",
        "formal_name": "Mini sound tagging (ufoai-sound)",
        "domain": "sound",
        "task_type": "clip",
        "metric": "mAP",
        "description": "Four-second mixtures of one to three real sound categories; every category present is a tag.",
        "labels": {"kind": "multi_label", "field": "tags", "separator": ";", "num_classes": len(classes), "classes": classes},
        "probe": {"epochs": 30, "learning_rate": 0.005, "batch_size": 32, "batch_size_encode": 16},
        "knn": False,
    }
    return TaskBuild(card, splits, SOURCES)


def _captions(rng: np.random.Generator, events: list[dict]) -> dict[str, str]:
    names = [PHRASES[e["label"]] for e in events]
    captions = []
    for i in range(5):
        parts = [options[(i + j) % len(options)] for j, options in enumerate(names)]
        if len(parts) == 1:
            templates = ["{0}", "the sound of {0}", "{0} can be heard", "a recording of {0}", "we hear {0}"]
        else:
            templates = ["{0} followed by {1}", "{0} and then {1}", "first {0}, later {1}", "{0} while {1} is heard", "a recording of {0} and {1}"]
        captions.append(templates[i].format(*parts))
    order = rng.permutation(5)
    return {f"caption_{k + 1}": captions[j] for k, j in enumerate(order)}


def build_sound_captions(size: str, seed: int) -> TaskBuild:
    """Audio-text retrieval: scenes of one or two sounds with five captions composed from their content (Clotho-like)."""
    classes = list(PHRASES)
    scenes = _scenes("sound_captions", size, seed, classes, {"train": 160, "valid": 40, "test": 40}, (1, 2), 5.0)
    rng = rng_for(seed, "sound_captions", "captions")
    splits = {s: [Sample(f"{s}_{i:05d}", a, _captions(rng, ev)) for i, (a, ev) in enumerate(items)] for s, items in scenes.items()}
    card = {
        "name": "mini_sound_captions",
        "formal_name": "Mini audio captions retrieval (ufoai-sound)",
        "domain": "sound",
        "task_type": "contrastive",
        "metric": "recallatk_r1",
        "description": "Five-second scenes of one or two real sounds, each with five captions naming what is heard.",
        "labels": {"kind": "captions"},
        "probe": {"epochs": 30, "learning_rate": 0.002, "batch_size": 32, "batch_size_encode": 16, "embed_dim": 256, "tokenizer": None},
        "knn": False,
    }
    return TaskBuild(card, splits, SOURCES)

"""xares-mini speech tasks from espeak-ng: keywords, language, voice gender, and digit-string ASR.

Voices are espeak-ng's variants; every task splits by voice, so test voices are never heard in training.
"""

from __future__ import annotations

import io
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import soundfile as sf

from .common import SR, Sample, TaskBuild, clip_card, count, normalise, require, resample, rng_for

SOURCES = [{"name": "espeak-ng speech synthesizer", "package": "espeak-ng", "licence": "GPL-3.0+ (synthesized speech; output is not covered by the GPL)"}]
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pl": "Polish"}
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@lru_cache(maxsize=1)
def variants() -> tuple[tuple[str, str], ...]:
    """espeak-ng's voice variants as (variant file name, gender 'M'/'F'), from ``espeak-ng --voices=variant``."""
    out = subprocess.run([require("espeak-ng", "espeak-ng"), "--voices=variant"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/") and parts[2].endswith(("/M", "/F")):
            found.append((parts[4][3:], parts[2][-1]))
    # effects voices that are not plausible speakers
    odd = {"whisper", "whisperf", "croak", "Demonic", "announcer", "UniRobot", "anikaRobot", "fast", "Tweaky"}
    return tuple(sorted(v for v in found if v[0] not in odd and not v[0].startswith(("klatt", "robosoft", "Robosoft"))))


def speak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's rendering of ``text`` at 16 kHz, leading/trailing silence trimmed."""
    wav = subprocess.run(
        [require("espeak-ng", "espeak-ng"), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    audio = resample(audio, sr, SR)
    active = np.flatnonzero(np.abs(audio) > 0.01 * (np.abs(audio).max() + 1e-9))
    if active.size:
        audio = audio[max(0, active[0] - 800) : active[-1] + 800]
    return audio


def _render(jobs: list[tuple[str, str, int, int]]) -> list[np.ndarray]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda j: speak(*j), jobs))


def _voice_splits(rng: np.random.Generator, voices: list[str]) -> dict[str, list[str]]:
    order = [voices[i] for i in rng.permutation(len(voices))]
    n_test = max(1, len(order) // 5)
    n_valid = max(1, len(order) // 5)
    return {"test": order[:n_test], "valid": order[n_test : n_test + n_valid], "train": order[n_test + n_valid :]}


def _finish(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """A little level variation and background noise, so clips are not bit-clean synthesis."""
    audio = normalise(audio, float(rng.uniform(0.3, 0.9)))
    return (audio + float(rng.uniform(0.0005, 0.003)) * rng.standard_normal(audio.size)).astype(np.float32)


def _build(name: str, seed: int, voices: list[str], items_per_voice, size_voices: int) -> dict[str, list[tuple]]:
    rng = rng_for(seed, name)
    chosen = [voices[i] for i in sorted(rng.choice(len(voices), size=min(size_voices, len(voices)), replace=False))]
    plan = {}
    for split, split_voices in _voice_splits(rng, chosen).items():
        plan[split] = [(v, *item) for v in split_voices for item in items_per_voice(rng, v)]
    return plan


def _samples(plan: dict[str, list[tuple]], rng: np.random.Generator, job, meta) -> dict[str, list[Sample]]:
    """Render every planned item (``job(item)`` -> espeak-ng arguments) into samples with ``meta(item)``."""
    splits = {}
    for split, items in plan.items():
        audio = _render([job(item) for item in items])
        splits[split] = [Sample(f"{split}_{i:05d}", _finish(rng, a), meta(item)) for i, (a, item) in enumerate(zip(audio, items))]
    return splits


def build_keywords(size: str, seed: int) -> TaskBuild:
    """Keyword spotting: ten command words, each said by every voice (Speech Commands-like)."""
    voices = [v for v, _ in variants()]
    plan = _build("keywords", seed, voices, lambda rng, v: [(w, int(rng.integers(130, 200)), int(rng.integers(30, 70))) for w in KEYWORDS], count(size, 40, 10))
    splits = _samples(plan, rng_for(seed, "keywords", "finish"), lambda it: (it[1], f"en+{it[0]}", it[2], it[3]),
                      lambda it: {"word": it[1], "voice": it[0]})
    card = clip_card("mini_keywords", "Mini keywords (espeak-ng)", "speech",
                     "Ten command words spoken by espeak-ng voice variants; test voices unseen in training.", "word", KEYWORDS)
    return TaskBuild(card, splits, SOURCES)


def _number_text(rng: np.random.Generator) -> str:
    return " ".join(str(int(rng.integers(1, 10 ** int(rng.integers(1, 4))))) for _ in range(int(rng.integers(2, 4))))


def build_language(size: str, seed: int) -> TaskBuild:
    """Language identification: numbers read aloud in six languages (espeak-ng reads digits in the language)."""
    voices = [v for v, _ in variants()]
    per_voice = lambda rng, v: [(lang, _number_text(rng), int(rng.integers(140, 190)), int(rng.integers(35, 65))) for lang in LANGUAGES]
    plan = _build("language", seed, voices, per_voice, count(size, 50, 10))
    splits = _samples(plan, rng_for(seed, "language", "finish"), lambda it: (it[2], f"{it[1]}+{it[0]}", it[3], it[4]),
                      lambda it: {"language": it[1], "text": it[2], "voice": it[0]})
    card = clip_card("mini_language", "Mini language ID (espeak-ng)", "speech",
                     "Random numbers read aloud in English, German, French, Spanish, Italian or Polish; test voices unseen.",
                     "language", list(LANGUAGES))
    return TaskBuild(card, splits, SOURCES)


def build_gender(size: str, seed: int) -> TaskBuild:
    """Voice gender: English numbers read by male or female voice variants (LibriSpeech-MF-like)."""
    gender = dict(variants())
    rng = rng_for(seed, "gender")
    by_gender = {g: [v for v, vg in gender.items() if vg == g] for g in ("M", "F")}
    fewest = min(len(v) for v in by_gender.values())  # as many voices of each gender: balanced classes
    by_gender = {g: sorted(rng.choice(vs, size=fewest, replace=False).tolist()) for g, vs in by_gender.items()}
    voice_splits = {g: _voice_splits(rng, vs) for g, vs in by_gender.items()}
    per_voice = count(size, 10, 3)
    # pitch varies widely (-p 5..95) so that gender is more than the variant's base pitch
    plan = {
        split: [(v, g, _number_text(rng), int(rng.integers(130, 200)), int(rng.integers(5, 96)))
                for g in ("M", "F") for v in voice_splits[g][split] for _ in range(per_voice)]
        for split in ("train", "valid", "test")
    }
    splits = _samples(plan, rng, lambda it: (it[2], f"en+{it[0]}", it[3], it[4]), lambda it: {"gender": it[1], "voice": it[0], "text": it[2]})
    card = clip_card("mini_gender", "Mini voice gender (espeak-ng)", "speech",
                     "Numbers read by male or female espeak-ng voice variants at random pitch; test voices unseen.", "gender", ["M", "F"])
    return TaskBuild(card, splits, SOURCES)


def build_digits_asr(size: str, seed: int) -> TaskBuild:
    """ASR: digit strings (TIDIGITS-like) spoken by many voices; transcripts are the digit words."""
    voices = [v for v, _ in variants()]

    def per_voice(rng, v):
        return [(" ".join(DIGITS[int(d)] for d in rng.integers(0, 10, size=int(rng.integers(2, 6)))), int(rng.integers(140, 180)), int(rng.integers(35, 65)))
                for _ in range(count(size, 10, 3))]

    plan = _build("digits", seed, voices, per_voice, count(size, 50, 12))
    # commas between the digits: audible word gaps
    splits = _samples(plan, rng_for(seed, "digits", "finish"), lambda it: (it[1].replace(" ", ", "), f"en+{it[0]}", it[2], it[3]),
                      lambda it: {"text": it[1], "voice": it[0]})
    card = {
        "name": "mini_digits",
        "formal_name": "Mini digit strings ASR (espeak-ng)",
        "domain": "speech",
        "task_type": "asr",
        "metric": "WER_inv",
        "description": "Strings of two to five digit words spoken by espeak-ng voices; transcripts in words; test voices unseen.",
        "labels": {"kind": "transcript", "field": "text"},
        "probe": {"epochs": 40, "learning_rate": 0.003, "batch_size": 8, "batch_size_encode": 8, "head": "ctc"},
        "knn": False,
    }
    return TaskBuild(card, splits, SOURCES)

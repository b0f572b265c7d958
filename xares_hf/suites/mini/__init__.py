"""xares-mini: the built-in default suite: small tasks of real audio for every X-ARES task type.

Speech from espeak-ng, music from fluidsynth with the FluidR3 General-MIDI soundfont, sound effects
from ufoai-sound; all Debian packages, no download at run time. Deterministic (seeded) and
idempotent: the same seed and size give byte-identical shards.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from .common import SIZES, SuiteBuildError, TaskBuild, write_task
from .speech import build_digits_asr, build_gender, build_keywords, build_language

SUITE_VERSION = 1


def _builders() -> dict[str, Callable[[str, int], TaskBuild]]:
    from . import music, sound

    return {
        "mini_keywords": build_keywords,
        "mini_language": build_language,
        "mini_gender": build_gender,
        "mini_digits": build_digits_asr,
        "mini_instrument": music.build_instruments,
        "mini_notes": music.build_notes,
        "mini_sounds": sound.build_sounds,
        "mini_sound_events": sound.build_sound_events,
        "mini_sound_tags": sound.build_sound_tags,
        "mini_sound_captions": sound.build_sound_captions,
    }


def build_mini_suite(out_dir: str | Path, size: str = "mini", seed: int = 0, tasks: list[str] | None = None) -> Path:
    """Build xares-mini into ``out_dir`` (``<task>/*.tar``, ``cards/*.yaml``, ``README.md``); returns ``out_dir``.

    Skips the work when ``out_dir`` already holds a complete build of the same version, size and seed.
    """
    if size not in SIZES:
        raise ValueError(f"unknown suite size '{size}'; choose one of {', '.join(SIZES)}")
    out = Path(out_dir)
    stamp = {"suite": "xares-mini", "version": SUITE_VERSION, "size": size, "seed": seed, "tasks": tasks}
    done = out / "BUILT.json"
    if done.is_file() and {k: v for k, v in json.loads(done.read_text()).items() if k in stamp} == stamp:
        return out
    out.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    builders = _builders()
    chosen = tasks or list(builders)
    unknown = sorted(set(chosen) - set(builders))
    if unknown:
        raise ValueError(f"unknown mini task(s): {', '.join(unknown)}; known: {', '.join(builders)}")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:  # builders mostly wait on espeak-ng/fluidsynth processes
        futures = {name: pool.submit(builders[name], size, seed) for name in chosen}
        builds = {}
        for name in tqdm(chosen, desc=f"build xares-mini ({size})", unit="task"):
            builds[name] = futures[name].result()
    cards = {name: write_task(out, build) for name, build in builds.items()}
    _write_dataset_card(out, size, seed, builds, cards)
    done.write_text(json.dumps({**stamp, "seconds": round(time.perf_counter() - started, 1)}, indent=2) + "\n")
    return out


def _write_dataset_card(out: Path, size: str, seed: int, builds: dict[str, TaskBuild], cards: dict[str, dict]) -> None:
    sources = {s["name"]: s for b in builds.values() for s in b.sources}
    rows = "\n".join(
        f"| `{name}` | {c['formal_name']} | {c['domain']} | {c['task_type']} | {c['metric']} | "
        + " / ".join(str(len(builds[name].splits[s])) for s in ("train", "valid", "test"))
        + f" | {c.get('description', '')} |"
        for name, c in cards.items()
    )
    configs = "\n".join(
        f"- config_name: {name}\n  data_files:\n"
        + "\n".join(f"  - split: {s}\n    path: {name}/{s}-*.tar" for s in ("train", "valid", "test"))
        for name in cards
    )
    licences = "\n".join(f"- **{s['name']}** (Debian package `{s['package']}`): {s['licence']}" for s in sources.values())
    (out / "README.md").write_text(
        f"""---
configs:
{configs}
---

# xares-mini ({size}, seed {seed})

Built by xares-hf (`xares-hf mini build`); every clip is real audio rendered offline from Debian packages, stored
as 16 kHz mono FLAC in WebDataset shards with one JSON of labels per clip. Same seed and size, same bytes.

| task | name | domain | type | metric | train / valid / test | what |
|---|---|---|---|---|---|---|
{rows}

## Sources and licences
{licences}

The sound-effect files of ufoai-sound carry per-file licences (GPL-2+, CC-BY(-SA)-3.0, public domain), listed in
`/usr/share/doc/ufoai-sound/copyright`. No emotional speech exists offline, so xares-mini has no emotion task.
"""
    )


__all__ = ["SUITE_VERSION", "SuiteBuildError", "build_mini_suite"]

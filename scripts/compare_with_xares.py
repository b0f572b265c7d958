"""Score one encoder file with the original xares 0.1.3 and with xares-hf in both protocols, side by side.

    python scripts/compare_with_xares.py --xares-venv /tmp/xares-venv --make-venv [--work /tmp/xares-compare]

- Data: X-ARES-layout shards under ``WORK/env/<task>/`` (``--data DIR`` to use your own; otherwise synthetic
  data with learnable labels is written for a clip task (Speech Commands V1, clips of 0.5-1 s), a k-fold task
  (ESC-50, 5 folds, at 44.1 kHz: resampled to the encoder's 16 kHz), a cropped task (LibriSpeech-MF, 6-16 s
  clips, 5 s crops) and a frame task (DESED, 10 s), one shard per split, so that xares' loader reads each
  split in one worker and forms its batches from consecutive clips).
- xares 0.1.3 runs in its own venv (``--make-venv`` creates it: ``xares==0.1.3`` with ``torch==2.9.1
  torchaudio==2.9.1 torchcodec==0.8.1``, several GB; never part of the tests or CI) through
  ``scripts/xares_driver.py``: its own task configs, its encoding, MLP (one run per seed) and k-NN.
- xares-hf runs here on the same shards with its shipped cards, ``protocol="xares-0.1.3"`` and ``"xares-hf"``,
  with the same seeds.

Prints per task the three scores and whether the xares-0.1.3 protocol matches xares 0.1.3 (k-NN within 0.001,
MLP mean inside xares' min-max over its seeds); the whole comparison goes to ``WORK/comparison.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_scale_tasks import shard_name  # noqa: E402

from xares_hf import evaluate  # noqa: E402
from xares_hf.data import write_shards  # noqa: E402
from xares_hf.suites.mini.common import rng_for  # noqa: E402
from xares_hf.tasks import load_task  # noqa: E402

SR = 16_000
XARES_PACKAGES = ["torch==2.9.1", "torchaudio==2.9.1", "torchcodec==0.8.1", "xares==0.1.3"]
# xares-hf card name -> xares 0.1.3's task module and config function
XARES_TASKS = {
    "speechcommandsv1": "tasks.speechcommandsv1_task:speechcommandsv1_config",
    "esc50": "tasks.esc50_task:esc50_config",
    "librispeechmalefemale": "tasks.librispeech_male_female_task:librispeech_male_female_config",
    "desed": "tasks.desed_task:desed_config",
}
KNN_TOLERANCE = 0.001


def _tone(rng: np.random.Generator, freq: float, n: int, harmonics: int = 3, rate: int = SR) -> np.ndarray:
    t = np.arange(n) / rate
    wave = sum(np.sin(2 * np.pi * freq * (h + 1) * t + rng.uniform(0, 6.3)) / (h + 1) for h in range(harmonics))
    return np.asarray(wave, np.float32)


def _clip(rng: np.random.Generator, freq: float, seconds: float, rate: int = SR) -> np.ndarray:
    """A class tone (jittered) in noise, at a random level: learnable, not trivial."""
    n = int(round(seconds * rate))
    wave = 0.15 * _tone(rng, freq * rng.uniform(0.94, 1.06), n, rate=rate) + 0.08 * rng.standard_normal(n).astype(np.float32)
    return (wave * rng.uniform(0.3, 1.0)).astype(np.float32)


def _samples(task: str, group: str, count: int, seed: int):
    """``(key, wave, rate, meta)`` for one shard group of a task."""
    rng = rng_for(seed, "compare", task, group)
    card = load_task(task)
    for i in range(count):
        key = f"{group.replace('-', '_')}_{i:05d}"
        if task == "speechcommandsv1":
            c = int(rng.integers(10))
            yield key, _clip(rng, 200 * 1.25 ** c, float(rng.uniform(0.5, 1.0))), SR, {"labels": card.labels.classes[c]}
        elif task == "esc50":  # at 44.1 kHz as ESC-50 is; 20 classes a semitone apart
            c = int(rng.integers(20))
            yield key, _clip(rng, 300 * 2 ** (c / 12), 5.0, rate=44_100), 44_100, {"label": c}
        elif task == "librispeechmalefemale":  # overlapping pitch ranges
            gender = "MF"[int(rng.integers(2))]
            pitch = float(rng.uniform(100, 170) if gender == "M" else rng.uniform(150, 240))
            yield key, _clip(rng, pitch, float(rng.uniform(6, 16))), SR, {"gender": gender}
        else:  # desed: one to three events of class tones in quiet noise
            wave = 0.01 * rng.standard_normal(10 * SR).astype(np.float32)
            events = []
            for _ in range(int(rng.integers(1, 4))):
                c = int(rng.integers(10))
                onset = float(rng.uniform(0, 8))
                offset = min(10.0, onset + float(rng.uniform(0.5, 3)))
                a, b = int(onset * SR), int(offset * SR)
                wave[a:b] += 0.2 * _tone(rng, 180 * 1.3 ** c, b - a)
                events.append({"onset": round(onset, 3), "offset": round(offset, 3), "label": card.labels.classes[c]})
            yield key, wave, SR, sorted(events, key=lambda e: e["onset"])


COUNTS = {"speechcommandsv1": {"train": 400, "valid": 100, "test": 150}, "esc50": 80,
          "librispeechmalefemale": {"train": 200, "valid": 60, "test": 100}, "desed": {"train": 160, "test": 60}}


def make_data(env: Path, tasks: list[str], seed: int = 0, scale: int = 1) -> None:
    """Synthetic X-ARES-layout shards for the tasks (kept if already written), ``scale`` times COUNTS' clips."""
    for task in tasks:
        if (env / task / ".written").exists():
            continue
        card = load_task(task)
        written = set()
        for group, pattern in card.data.patterns().items():
            if pattern in written:  # valid and test on the same shards (DESED)
                continue
            written.add(pattern)
            counts = COUNTS[task]
            count = scale * (counts if isinstance(counts, int) else counts.get(group, counts.get("test")))
            write_shards(_samples(task, group, count, seed), env / task / shard_name(card, group), max_count=100_000)
        (env / task / ".written").touch()


def make_venv(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", *XARES_PACKAGES], check=True)


def run_xares(venv: Path, encoder: Path, env: Path, out: Path, seeds: list[int], tasks: list[str],
              log: Path | None = None) -> dict:
    """xares 0.1.3 through ``xares_driver.py`` in its venv; its output goes to ``log`` if given."""
    driver = Path(__file__).resolve().parent / "xares_driver.py"
    specs = [XARES_TASKS[t] for t in tasks]
    with open(log, "w") if log else contextlib.nullcontext() as sink:
        subprocess.run([str(venv / "bin" / "python"), str(driver), str(encoder), str(env), str(out),
                        ",".join(map(str, seeds)), *specs], check=True, cwd=out.parent,
                       stdout=sink, stderr=subprocess.STDOUT if log else None)
    raw = json.loads(out.read_text())
    return {task: raw[XARES_TASKS[task]] for task in tasks}


def run_xares_hf(encoder: Path, env: Path, work: Path, seeds: list[int], tasks: list[str], protocol: str) -> dict:
    started = time.perf_counter()
    results = evaluate(str(encoder), tasks=tasks, data_dir=env, cache_dir=work / "cache", output_dir=work / "results",
                       seed=seeds[0], seeds=len(seeds), protocol=protocol, download=False)
    out = {}
    for t in results.tasks:
        mlp = [r["mlp"] for r in t.seed_runs] if t.seed_runs else [t.mlp]
        kept = {}
        for entry in t.left_out:
            if "same encoding batch" in entry["reason"]:
                kept[entry["split"]] = kept.get(entry["split"], 0) + 1
        out[t.name] = {"mlp": mlp, "knn": t.knn, "eval_size": t.eval_size, "crops_left_out": kept}
    out["_seconds"] = time.perf_counter() - started
    return out


def compare(xares: dict, old: dict, new: dict, tasks: list[str]) -> list[dict]:
    rows = []
    for task in tasks:
        x, o, n = xares[task], old[task], new[task]
        low, high = min(x["mlp"]), max(x["mlp"])
        row = {"task": task, "xares_mlp": x["mlp"], "xares_knn": x["knn"], "old_mlp": o["mlp"], "old_knn": o["knn"],
               "new_mlp": n["mlp"], "new_knn": n["knn"], "xares_read_back": x["read_back"],
               "old_crops_left_out": o["crops_left_out"],
               "mlp_inside_spread": bool(low - 1e-9 <= float(np.mean(o["mlp"])) <= high + 1e-9)}
        if x["knn"] is not None and o["knn"] is not None:
            row["knn_difference"] = abs(x["knn"] - o["knn"])
            row["knn_matches"] = row["knn_difference"] <= KNN_TOLERANCE
        rows.append(row)
    return rows


def _mlp(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else f"{values[0]:.3f}"


def _knn(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(rows: list[dict]) -> None:
    print("| task | xares 0.1.3 MLP (min-max) | xares-hf, protocol xares-0.1.3, MLP | xares-hf MLP | "
          "xares 0.1.3 k-NN | protocol xares-0.1.3 k-NN | xares-hf k-NN | matches |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        match = ("k-NN " + ("yes" if r.get("knn_matches") else f"no ({r['knn_difference']:.4f})") + ", "
                 if "knn_matches" in r else "")
        match += "MLP " + ("inside" if r["mlp_inside_spread"] else "outside") + " xares' spread"
        print(f"| {r['task']} | {_mlp(r['xares_mlp'])} | {_mlp(r['old_mlp'])} | {_mlp(r['new_mlp'])} | "
              f"{_knn(r['xares_knn'])} | {_knn(r['old_knn'])} | {_knn(r['new_knn'])} | {match} |")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xares-venv", type=Path, required=True, help="venv with xares==0.1.3 (see --make-venv)")
    parser.add_argument("--make-venv", action="store_true", help="create --xares-venv first if it has no python")
    parser.add_argument("--encoder", type=Path, default=Path(__file__).resolve().parent / "logmel_projection_encoder.py")
    parser.add_argument("--work", type=Path, default=Path("/tmp/xares-compare"))
    parser.add_argument("--data", type=Path, help="X-ARES-layout data folder (default: synthetic data under WORK/env)")
    parser.add_argument("--tasks", nargs="+", default=list(XARES_TASKS), choices=list(XARES_TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    env = args.data or args.work / "env"
    if args.data is None:
        make_data(env, args.tasks)
    if args.make_venv and not (args.xares_venv / "bin" / "python").exists():
        make_venv(args.xares_venv)
    started = time.perf_counter()
    xares = run_xares(args.xares_venv, args.encoder.resolve(), env.resolve(), args.work / "xares.json", args.seeds, args.tasks)
    xares_seconds = time.perf_counter() - started
    old = run_xares_hf(args.encoder, env, args.work, args.seeds, args.tasks, "xares-0.1.3")
    new = run_xares_hf(args.encoder, env, args.work, args.seeds, args.tasks, "xares-hf")
    rows = compare(xares, old, new, args.tasks)
    print_table(rows)
    print(f"wall: xares 0.1.3 {xares_seconds:.0f} s, xares-hf protocol xares-0.1.3 {old['_seconds']:.0f} s, "
          f"xares-hf {new['_seconds']:.0f} s")
    (args.work / "comparison.json").write_text(json.dumps({"rows": rows, "xares": xares, "old": old, "new": new}, indent=1))
    return rows


if __name__ == "__main__":
    main()

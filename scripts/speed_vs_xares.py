"""Wall time of xares-hf against the original xares 0.1.3: same synthetic data, same encoder file, one seed.

    python scripts/speed_vs_xares.py --xares-venv /tmp/xares-venv [--work /tmp/speed-vs-xares] [--repeat N]
                                     [--json out.json] [--tasks esc50 desed speechcommandsv1]

What runs (issue 19's speed target):
- Data: ``compare_with_xares.make_data`` writes X-ARES-layout synthetic shards under ``WORK/env`` once (kept
  between calls): ESC-50 (5 folds of 5 s clips at 44.1 kHz, resampled to 16 kHz), DESED (frame task, 10 s) and
  Speech Commands V1 (clips of 0.5-1 s). Encoder: ``scripts/logmel_projection_encoder.py`` (log-mel times a
  fixed projection) on both sides. Seed 42 only, one MLP per task (per fold for ESC-50) plus k-NN where the
  task has it.
- xares 0.1.3 runs in its own venv through ``scripts/xares_driver.py`` (as ``compare_with_xares.py`` runs it),
  after its encoded shards and checkpoints (``WORK/env/<task>/embeddings`` and ``checkpoints``) are deleted,
  so it encodes and trains from scratch.
- xares-hf runs ``xares_hf.evaluate`` in a child python of this venv, with an empty ``cache_dir``, so that
  both sides pay interpreter start, imports and encoder loading the same way.
- ``--repeat N`` runs the two sides N times, alternating (xares, xares-hf, xares, ...); each run is reported.
- Each side's own output goes to ``WORK/run<i>/xares.log`` and ``xares-hf.log``. The 1-minute load average at
  each side's start is printed with the table: figures taken while other work loads the machine mislead.

What the figures mean: ``wall`` is one side's process from start to exit (imports included), measured here.
Per task, ``encode`` is xares' ``make_encoded_tar`` and xares-hf's encode stage (decode, encode, cache write
and the read back of the embeddings: ``TaskResult.timings["encode_s"]``); ``probe`` is the MLP plus k-NN
(xares: the driver's ``seconds``, its MLP stage reads the encoded shards back; xares-hf: ``probe_s``).
``other`` is the wall time outside those stages (start, imports, task setup). ``ratio`` is xares-hf / xares;
the target is a total wall ratio of at most 1/3.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_with_xares import XARES_TASKS, make_data, run_xares  # noqa: E402

TASKS = ["esc50", "desed", "speechcommandsv1"]
TARGET = 1 / 3
ENCODER = Path(__file__).resolve().parent / "logmel_projection_encoder.py"
# the xares-hf child: evaluate() and nothing else, so that its imports count as xares' do
HF_CHILD = (
    "import sys\n"
    "from xares_hf import evaluate\n"
    "encoder, env, cache, out, seed, protocol, *tasks = sys.argv[1:]\n"
    "evaluate(encoder, tasks=tasks, data_dir=env, cache_dir=cache, output_dir=out, seed=int(seed),\n"
    "         protocol=protocol, download=False)\n"
)


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}


def _failed(side: str, log: Path) -> SystemExit:
    """A side's process exited with an error: the end of its log, and where the whole log is."""
    tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-15:] if log.exists() else []
    return SystemExit("\n".join([f"{side} failed; its whole output is in {log}; the end of it:", *tail]))


def clear_xares_outputs(env: Path, tasks: list[str]) -> None:
    """Delete what xares 0.1.3 keeps between runs: ``<task>/embeddings`` (encoded tars and their ready marker)
    and ``<task>/checkpoints`` (MLP checkpoints, ``mlp_score.txt``, ``knn_score.txt``)."""
    for task in tasks:
        for name in ("embeddings", "checkpoints"):
            shutil.rmtree(env / task / name, ignore_errors=True)


def time_xares(venv: Path, encoder: Path, env: Path, work: Path, tasks: list[str], seed: int) -> dict:
    """One fresh xares 0.1.3 run: wall seconds and per task encode / probe seconds from its driver."""
    clear_xares_outputs(env, tasks)
    work.mkdir(parents=True, exist_ok=True)
    load, started = os.getloadavg()[0], time.perf_counter()
    try:
        raw = run_xares(venv, encoder, env, work / "xares.json", [seed], tasks, log=work / "xares.log")
    except subprocess.CalledProcessError:
        raise _failed("xares 0.1.3", work / "xares.log") from None
    wall = time.perf_counter() - started
    stages = {}
    for task in tasks:
        s = raw[task]["seconds"]
        stages[task] = {"encode": s["encode"], "probe": sum(s.get("mlp", [])) + s.get("knn", 0.0)}
    return {"wall": wall, "load": load, "tasks": stages}


def time_xares_hf(encoder: Path, env: Path, work: Path, tasks: list[str], seed: int, protocol: str,
                  python: str = sys.executable) -> dict:
    """One fresh xares-hf run in a child python (empty cache): wall seconds and per task encode / probe seconds
    from the ``timings`` of each task in the ``results.json`` it writes."""
    cache, out = work / "hf-cache", work / "hf-results"
    for folder in (cache, out):
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    load, started = os.getloadavg()[0], time.perf_counter()
    with open(work / "xares-hf.log", "w") as log:
        code = subprocess.run([python, "-c", HF_CHILD, str(encoder), str(env), str(cache), str(out), str(seed),
                               protocol, *tasks], env=_offline_env(), stdout=log, stderr=subprocess.STDOUT).returncode
    if code:
        raise _failed("xares-hf", work / "xares-hf.log")
    wall = time.perf_counter() - started
    [results_file] = out.glob("*/results.json")
    by_name = {t["name"]: t for t in json.loads(results_file.read_text())["tasks"]}
    stages = {}
    for task in tasks:
        entry = by_name[task]
        if not entry.get("encoded", True):
            raise RuntimeError(f"xares-hf took {task} from a cache: the run is not fresh")
        stages[task] = {"encode": entry["timings"]["encode_s"], "probe": entry["timings"]["probe_s"]}
    return {"wall": wall, "load": load, "tasks": stages}


def rows_of(xares: dict, hf: dict, tasks: list[str]) -> list[dict]:
    """Table rows: per task and stage, then ``other`` and the wall totals; ratio is xares-hf / xares."""
    rows = []
    for task in tasks:
        for stage in ("encode", "probe"):
            rows.append({"task": task, "stage": stage, "xares": xares["tasks"][task][stage],
                         "xares_hf": hf["tasks"][task][stage]})

    def staged(side: dict) -> float:
        return sum(v for t in side["tasks"].values() for v in t.values())

    rows.append({"task": "all", "stage": "other", "xares": xares["wall"] - staged(xares),
                 "xares_hf": hf["wall"] - staged(hf)})
    rows.append({"task": "all", "stage": "wall", "xares": xares["wall"], "xares_hf": hf["wall"]})
    for row in rows:
        row["ratio"] = row["xares_hf"] / row["xares"] if row["xares"] > 0 else None
    return rows


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}\n| task | stage | xares 0.1.3 s | xares-hf s | ratio |\n|---|---|---|---|---|")
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(f"| {r['task']} | {r['stage']} | {r['xares']:.2f} | {r['xares_hf']:.2f} | {ratio} |")
    wall = rows[-1]
    verdict = "met" if wall["ratio"] is not None and wall["ratio"] <= TARGET else "NOT met"
    print(f"target xares-hf <= 1/3 of xares: {wall['xares_hf']:.1f} s vs {wall['xares'] * TARGET:.1f} s "
          f"(1/3 of {wall['xares']:.1f} s), ratio {wall['ratio']:.3f}: {verdict}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xares-venv", type=Path, required=True, help="venv with xares==0.1.3 "
                        "(compare_with_xares.py --make-venv creates one)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/speed-vs-xares"))
    parser.add_argument("--encoder", type=Path, default=ENCODER)
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=list(XARES_TASKS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--protocol", default="xares-hf", help="xares-hf's protocol (default: its own)")
    parser.add_argument("--scale", type=int, default=1, help="K times the synthetic clips (a fresh --work per scale)")
    parser.add_argument("--repeat", type=int, default=1, help="run both sides N times, alternating")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args(argv)
    work, encoder = args.work.resolve(), args.encoder.resolve()
    env = work / "env"
    make_data(env, args.tasks, scale=args.scale)
    runs = []
    for i in range(args.repeat):
        xares = time_xares(args.xares_venv, encoder, env, work / f"run{i}", args.tasks, args.seed)
        hf = time_xares_hf(encoder, env, work / f"run{i}", args.tasks, args.seed, args.protocol)
        rows = rows_of(xares, hf, args.tasks)
        print_table(rows, f"run {i + 1} of {args.repeat} (seed {args.seed}, xares-hf protocol {args.protocol}; "
                    f"1-min load average at start: xares {xares['load']:.1f}, xares-hf {hf['load']:.1f}; "
                    f"logs in {work / f'run{i}'})")
        runs.append({"xares": xares, "xares_hf": hf, "rows": rows})
    ratios = [r["rows"][-1]["ratio"] for r in runs]
    if len(runs) > 1:
        print(f"\nwall ratio per run: {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f} "
              f"(target <= {TARGET:.3f})")
    report = {"tasks": args.tasks, "seed": args.seed, "protocol": args.protocol, "target_ratio": TARGET,
              "runs": runs, "median_wall_ratio": statistics.median(ratios)}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

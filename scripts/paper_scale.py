"""Paper-scale runs: X-ARES tasks at F times their real size; time per phase, peak memory, store size; F = 1 estimates.

    python scripts/benchmark.py --paper-scale F [F ...] [--tasks desed librispeech esc50 clotho]
        [--encoder log-mel | --encoder random-projection --width 768 --frame-rate 50
         | --encoder wav2vec2 --width 128 --layers 4]
        [--train-clips N [N ...]] [--eval-clips N] [--layer L] [--work DIR] [--json out.json]

Each (task, F) gets synthetic shards in X-ARES' layout, written once into ``--work`` (``paper_scale_tasks.py``: the
real cards' task type, labels, metric and probe; split sizes and clip durations of the original data sets, scaled by
F; ``--train-clips`` / ``--eval-clips`` fix the training / valid+test sizes instead). Every run is a fresh child
process with an empty embedding store (``--asr-head``, default ctc, for ASR). A thread in the child samples
``RssAnon`` (anonymous memory: what can run out) and ``VmRSS`` (also file pages, e.g. of a memory-mapped store)
of the child and its descendants 20 times a second, each sample tagged with ``profiling.current_stage()``.

At F = 1: time and store size are linear in the data (measured / F; with --train-clips/--eval-clips, measured x
full clips / clips). Memory is not assumed linear: given two or more sizes of a task, the growth per hour of audio
between the two largest is shown and the peak extrapolated along that line to F = 1; with one size, not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from paper_scale_tasks import SIZES, RandomProjectionEncoder, build_task, save_random_wav2vec2, size_table  # noqa: E402

DEFAULT_TASKS = ["desed", "librispeech", "esc50", "clotho"]
STAGES = ("encoding", "probes", "other")
MB = 2**20


def memory_kb(pid: int) -> tuple[int, int]:
    """``RssAnon`` and ``VmRSS`` (kB) of process ``pid`` plus all its descendants (``/proc/PID/task/*/children``)."""
    anon = rss = 0
    stack, seen = [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    anon += int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):  # the process (or a thread) ended while being read
            continue
    return anon, rss


class MemorySampler(threading.Thread):
    """Samples :func:`memory_kb` of this process every ``interval`` s, keeping peaks and time per stage."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks_kb = {stage: {"anon": 0, "rss": 0} for stage in (*STAGES, "run")}
        self.stage_s = {stage: 0.0 for stage in STAGES}
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        from xares_hf import profiling

        last = time.monotonic()
        while True:
            stage = profiling.current_stage() or "other"
            stage = stage if stage in STAGES else "other"
            anon, rss = memory_kb(os.getpid())
            now = time.monotonic()
            self.stage_s[stage] += now - last
            last = now
            self.samples += 1
            for where in (stage, "run"):
                self.peaks_kb[where]["anon"] = max(self.peaks_kb[where]["anon"], anon)
                self.peaks_kb[where]["rss"] = max(self.peaks_kb[where]["rss"], rss)
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        """Take one last sample and end the thread."""
        self._stop_event.set()
        self.join()


def child(spec: dict) -> None:
    """The child process: evaluate one task with the sampler running; print the figures as one ``PAPER`` JSON line."""
    from xares_hf import evaluate, profiling

    sampler = MemorySampler()
    sampler.start()
    if spec["encoder"] == "random-projection":
        encoder = RandomProjectionEncoder(spec["width"], spec["frame_rate"], seed=spec["seed"])
    else:  # "log-mel", or the folder of a saved random wav2vec2
        encoder = spec["encoder_path"] or spec["encoder"]
    start = time.perf_counter()
    results = evaluate(encoder, tasks=[spec["card"]], data_dir=spec["data"], cache_dir=spec["cache"], output_dir=None,
                       layer=spec["layer"], asr_head=spec["asr_head"], download=False)
    wall = time.perf_counter() - start
    sampler.stop()
    task = results.tasks[0]
    print("PAPER" + json.dumps({
        "wall_s": wall, "phases_s": profiling.totals(), "stage_s": sampler.stage_s, "samples": sampler.samples,
        "peak_anon_mb": {k: v["anon"] / 1024 for k, v in sampler.peaks_kb.items()},
        "peak_rss_mb": {k: v["rss"] / 1024 for k, v in sampler.peaks_kb.items()},
        "score": task.mlp, "eval_size": task.eval_size, "xares_hf": str(Path(sys.modules["xares_hf"].__file__).parent),
    }), flush=True)


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_task(task: str, f: float, train_clips: int | None, args: argparse.Namespace, work: Path) -> dict:
    """Write (or reuse) the task's shards, run it in a fresh child process with an empty store, return its figures."""
    variant = f"{task}-F{f:g}-train{train_clips or 'F'}-eval{args.eval_clips or 'F'}-seed{args.seed}-{args.format}"
    card, manifest = build_task(task, work / "data" / variant, f, train_clips, args.eval_clips, args.seed, args.format)
    encoder_tag = {"log-mel": "log-mel", "random-projection": f"rp{args.width}x{args.frame_rate:g}",
                   "wav2vec2": f"w2v{args.width}x{args.layers}"}[args.encoder]
    encoder_path = None
    if args.encoder == "wav2vec2":
        encoder_path = str(save_random_wav2vec2(work / "models" / f"{encoder_tag}-seed{args.seed}", args.width,
                                                args.layers, args.seed))
    cache = work / "stores" / f"{variant}-{encoder_tag}"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    spec = {"encoder": args.encoder, "encoder_path": encoder_path, "width": args.width, "frame_rate": args.frame_rate,
            "seed": args.seed,
            "card": str(card), "data": str(card.parent.parent), "cache": str(cache), "layer": args.layer,
            "asr_head": args.asr_head}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"paper-scale run of {task} at F={f:g} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    figures = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("PAPER"))[5:])
    store = folder_bytes(cache)
    if not args.keep_stores:
        shutil.rmtree(cache, ignore_errors=True)
    overridden = train_clips is not None or args.eval_clips is not None
    factor = manifest["full_clips"] / manifest["clips"] if overridden else 1.0 / f
    row = {
        "task": task, "task_type": card_type(card), "F": f, "train_clips": train_clips, "eval_clips": args.eval_clips,
        "clips": manifest["clips"], "clips_per_split": {g: v["clips"] for g, v in manifest["groups"].items()},
        "hours": manifest["hours"], "wall_s": figures["wall_s"], "phases_s": figures["phases_s"],
        "stage_s": figures["stage_s"], "peak_anon_mb": figures["peak_anon_mb"], "peak_rss_mb": figures["peak_rss_mb"],
        "memory_samples": figures["samples"], "store_bytes": store, "score": figures["score"],
        "estimated_sizes": SIZES[task].estimated, "xares_hf": figures["xares_hf"],
    }
    row["at_F1"] = {
        "factor": factor,
        "method": "linear in data: measured x full clips / clips" if overridden else "linear in data: measured / F",
        "clips": round(row["clips"] * factor), "hours": row["hours"] * factor, "wall_s": row["wall_s"] * factor,
        "phases_s": {k: v * factor for k, v in row["phases_s"].items()},
        "stage_s": {k: v * factor for k, v in row["stage_s"].items()}, "store_bytes": store * factor,
    }
    return row


def card_type(card: Path) -> str:
    """The task type named in a card file."""
    import yaml

    return yaml.safe_load(card.read_text())["task_type"]


def memory_growth(rows: list[dict]) -> dict | None:
    """Peak memory growth per hour of audio between a task's two largest runs, extrapolated to F = 1 along that line."""
    by_hours = sorted(rows, key=lambda r: r["hours"])
    if len(by_hours) < 2 or by_hours[-1]["hours"] <= by_hours[-2]["hours"]:
        return None
    small, large = by_hours[-2], by_hours[-1]
    full_hours = large["at_F1"]["hours"]
    span = large["hours"] - small["hours"]
    out = {"task": large["task"], "from_hours": small["hours"], "to_hours": large["hours"], "full_hours": full_hours,
           "method": "straight line through the two largest runs' peaks, in hours of audio, continued to F = 1"}
    for kind in ("peak_anon_mb", "peak_rss_mb"):
        for stage in ("run", "encoding", "probes"):
            a, b = small[kind][stage], large[kind][stage]
            slope = (b - a) / span
            out[f"{kind}_{stage}_per_hour"] = slope
            out[f"{kind}_{stage}_at_F1"] = b + slope * (full_hours - large["hours"])
    return out


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 3600:.2f} h"


def _bytes(value: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", MB), ("kB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def print_row(row: dict) -> None:
    """The figures of one run, then the same extrapolated to F = 1."""
    sizes = ", ".join(f"{g} {n}" for g, n in row["clips_per_split"].items())
    print(f"\n{row['task']} ({row['task_type']}) F={row['F']:g}: {row['clips']} clips ({sizes}), {row['hours']:.3f} h of audio, "
          f"wall {_seconds(row['wall_s'])}, score {row['score']:.3f} (xares_hf from {row['xares_hf']})")
    print("  phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(row["phases_s"].items(), key=lambda kv: -kv[1])))
    print("  stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in row["stage_s"].items()))
    for label, kind in (("peak anon (RssAnon)", "peak_anon_mb"), ("peak RSS (VmRSS)   ", "peak_rss_mb")):
        p = row[kind]
        print(f"  {label}: run {p['run']:.0f} MB, encoding {p['encoding']:.0f} MB, probes {p['probes']:.0f} MB, "
              f"other {p['other']:.0f} MB")
    print(f"  embedding store on disk: {_bytes(row['store_bytes'])}")
    x = row["at_F1"]
    print(f"  at F=1 (x{x['factor']:.4g}, {x['method']}): {x['clips']} clips, {x['hours']:.1f} h, wall {_seconds(x['wall_s'])} "
          f"(encoding {_seconds(x['stage_s']['encoding'])}, probes {_seconds(x['stage_s']['probes'])}), "
          f"store {_bytes(x['store_bytes'])}")


def print_growth(growth: dict) -> None:
    """Measured memory growth between two sizes of a task and the peaks it implies at F = 1."""
    print(f"\n{growth['task']} memory growth from {growth['from_hours']:.3f} h to {growth['to_hours']:.3f} h of audio "
          f"({growth['method']}; F = 1 is {growth['full_hours']:.1f} h):")
    for kind, label in (("peak_anon_mb", "anon"), ("peak_rss_mb", "RSS ")):
        print(f"  {label}: " + ", ".join(
            f"{stage} {growth[f'{kind}_{stage}_per_hour']:+.1f} MB/h -> {growth[f'{kind}_{stage}_at_F1'] / 1024:.2f} GB at F=1"
            for stage in ("run", "encoding", "probes")))


def _layer(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``benchmark.py --paper-scale``."""
    parser = argparse.ArgumentParser(prog="benchmark.py --paper-scale", description=__doc__.splitlines()[0])
    parser.add_argument("--paper-scale", type=float, nargs="+", required=True, metavar="F", help="fractions of the real size")
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS, choices=sorted(SIZES), metavar="TASK")
    parser.add_argument("--encoder", default="log-mel", choices=["log-mel", "random-projection", "wav2vec2"])
    parser.add_argument("--layers", type=int, default=4, help="wav2vec2: transformer blocks (hidden states - 1)")
    parser.add_argument("--width", type=int, default=768, help="random-projection, wav2vec2: features per frame")
    parser.add_argument("--frame-rate", type=float, default=50.0, help="random-projection: frames per second")
    parser.add_argument("--train-clips", type=int, nargs="+", metavar="N", help="training clips, whatever F says (one run each)")
    parser.add_argument("--eval-clips", type=int, metavar="N", help="valid and test clips (per fold: k-fold tasks), whatever F says")
    parser.add_argument("--layer", type=_layer, default=None, help="passed to evaluate(layer=...)")
    parser.add_argument("--asr-head", default="ctc", choices=["ctc", "llm"])
    parser.add_argument("--format", default="flac", choices=["flac", "wav"], help="audio files in the shards")
    parser.add_argument("--seed", type=int, default=0, help="of the synthetic data and the random projection")
    parser.add_argument("--work", help="shards (kept, reused) and stores (default: a new temporary folder)")
    parser.add_argument("--keep-stores", action="store_true", help="keep each run's embedding store")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--sizes", action="store_true", help="print the table of real split sizes and durations too")
    args = parser.parse_args(argv)
    if any(not 0 < f <= 1 for f in args.paper_scale):
        parser.error("--paper-scale values must be in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run every (task, F, training size), print the figures and their F = 1 extrapolation; return the report."""
    args = parse_args(argv)
    work = Path(args.work).expanduser() if args.work else Path(tempfile.mkdtemp(prefix="xares-paper-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.sizes:
        print(size_table())
    encoder = {"log-mel": "log-mel", "random-projection": f"random-projection {args.width}-d at {args.frame_rate:g} frames/s",
               "wav2vec2": f"random wav2vec2 {args.width}-d, {args.layers} blocks, 50 frames/s"}[args.encoder]
    print(f"paper scale {' '.join(f'{f:g}' for f in args.paper_scale)}, encoder {encoder}, work folder {work}")
    report = {"command": "python scripts/benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "encoder": encoder, "work": str(work), "runs": [], "memory_growth": []}
    for task in args.tasks:
        rows = []
        for f in sorted(args.paper_scale):
            for train_clips in sorted(args.train_clips or [None], key=lambda n: n or 0):
                rows.append(run_task(task, f, train_clips, args, work))
                print_row(rows[-1])
        report["runs"] += rows
        growth = memory_growth(rows)
        if growth:
            report["memory_growth"].append(growth)
            print_growth(growth)
        else:
            print(f"\n{task} memory at F=1: not extrapolated (run two sizes, e.g. --paper-scale 0.01 0.08, to see its growth)")
        if args.json:  # after every task, so a long run's finished tasks are kept
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()

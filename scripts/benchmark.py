"""Where a run's time goes: wall time per phase, overhead beyond the encoder, clips/s, peak memory.

    python scripts/benchmark.py [--encoder log-mel] [--size tiny|mini] [--tasks ...] [--scale K] [--json out.json]
    python scripts/benchmark.py --paper-scale F [F ...] ...   (X-ARES tasks at F times their size: paper_scale.py)
    python scripts/benchmark.py --stages [--clips N] ...        (each stage of the encoding data path: stage_costs.py)

Builds (once) the xares-mini suite of the given size; with ``--scale K`` a copy whose splits hold every
shard K times (as links), to show how cost grows with data. Runs ``xares_hf.evaluate`` with an empty
embedding cache in a fresh process state, then again with the cache filled, and prints the phases.
Peak RSS is the process's maximum resident set size (``resource``), measured in a child process per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ["decode + resample", "encoder forward", "cache I/O", "probe training", "kNN", "scoring"]


def scaled_suite(suite: Path, scale: int, out: Path) -> Path:
    """A view of ``suite`` where every shard appears ``scale`` times (hard links, so no extra disk)."""
    if scale == 1:
        return suite
    for task_dir in (p for p in suite.iterdir() if p.is_dir() and p.name != "cards"):
        target = out / task_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for shard in task_dir.glob("*.tar"):
            for k in range(scale):
                link = target / shard.name.replace(".tar", f"-rep{k}.tar")
                if not link.exists():
                    os.link(shard, link)
    return out


def run_once(args: argparse.Namespace, data: Path, cards: Path, cache: Path) -> dict:
    """One evaluation in a child process (so peak RSS belongs to this run alone)."""
    code = f"""
import json, resource, time
from xares_hf import evaluate, profiling
start = time.perf_counter()
results = evaluate({args.encoder!r}, tasks=[{str(cards)!r}], data_dir={str(data)!r}, cache_dir={str(cache)!r}, output_dir=None,
                   pad_whisper={not args.no_whisper_padding!r})
wall = time.perf_counter() - start
clips = sum(t.eval_size for t in results.tasks)
print("BENCH" + json.dumps({{"wall_s": wall, "phases": profiling.totals(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                            "encoding_rss_mb": profiling.peaks().get("rss_while_encoding_mb", 0.0),
                            "encoded": any(t.encoded for t in results.tasks), "mlp_average": results.mlp_average}}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("BENCH"))[5:])


def count_clips(data: Path, cards: Path) -> int:
    from xares_hf.data import AudioSample, iter_audio, shard_files
    from xares_hf.tasks import load_tasks

    total = 0
    for card in load_tasks([cards]):
        for split, files in shard_files(card, data).items():
            total += sum(isinstance(s, AudioSample) for s in iter_audio(files, 16_000, card.name, split))
    return total


def main() -> None:
    if any(a == "--paper-scale" or a.startswith("--paper-scale=") for a in sys.argv[1:]):  # scripts/paper_scale.py
        sys.path.insert(0, str(Path(__file__).parent))
        from paper_scale import main as paper_scale

        paper_scale(sys.argv[1:])
        return
    if "--stages" in sys.argv[1:]:  # scripts/stage_costs.py
        sys.path.insert(0, str(Path(__file__).parent))
        from stage_costs import main as stage_costs

        stage_costs([a for a in sys.argv[1:] if a != "--stages"])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="log-mel")
    parser.add_argument("--size", default="tiny", choices=["tiny", "mini"])
    parser.add_argument("--tasks", nargs="+", help="mini tasks to run (default: all)")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--no-whisper-padding", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    from xares_hf.suites import build_mini_suite, suite_dir

    work = Path(tempfile.mkdtemp(prefix="xares-bench-"))
    suite = build_mini_suite(suite_dir(args.size), size=args.size)
    cards = suite / "cards"
    if args.tasks:
        cards = work / "cards"
        cards.mkdir()
        for name in args.tasks:
            (cards / f"{name}.yaml").write_text((suite / "cards" / f"{name}.yaml").read_text())
    data = scaled_suite(suite, args.scale, work / "scaled")
    clips = count_clips(data, cards)

    first = run_once(args, data, cards, work / "cache")
    second = run_once(args, data, cards, work / "cache")
    phases = {p: first["phases"].get(p, 0.0) for p in PHASES}
    phases["other (labels, startup, glue)"] = max(0.0, first["wall_s"] - sum(phases.values()))
    forward = phases["encoder forward"]
    report = {
        "command": "python scripts/benchmark.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "encoder": args.encoder, "size": args.size, "scale": args.scale, "clips": clips,
        "wall_s": round(first["wall_s"], 2), "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "overhead_ratio": round(1 - forward / first["wall_s"], 3), "clips_per_s": round(clips / first["wall_s"], 1),
        "peak_rss_mb": round(first["peak_rss_mb"]), "peak_rss_while_encoding_mb": round(first["encoding_rss_mb"]),
        "second_run_wall_s": round(second["wall_s"], 2),
        "second_run_encoded": second["encoded"], "mlp_average": first["mlp_average"],
    }
    width = max(len(k) for k in phases)
    print(f"{args.encoder} on xares-mini ({args.size}, x{args.scale}): {clips} clips, {report['wall_s']} s, {report['clips_per_s']} clips/s")
    for name, seconds in phases.items():
        print(f"  {name.ljust(width)}  {seconds:8.2f} s  {100 * seconds / first['wall_s']:5.1f} %")
    print(f"  overhead beyond the encoder forward: {100 * report['overhead_ratio']:.1f} %")
    print(f"  peak RSS {report['peak_rss_mb']} MB ({report['peak_rss_while_encoding_mb']} MB while encoding); second run (cache filled) {report['second_run_wall_s']} s, encoded again: {second['encoded']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

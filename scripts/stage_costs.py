"""Per-clip cost of each stage of the encoding data path, one stage at a time on the same clips, then end to end.

    python scripts/benchmark.py --stages [--clips 600] [--seconds 1 1] [--native-rate 16000] [--rate R]
        [--format flac|wav] [--encoder log-mel|<transformers folder>|random-wav2vec2] [--device cpu]
        [--repeats 3] [--threads T] [--decode-workers N] [--work DIR] [--json out.json]   (or scripts/stage_costs.py)

Writes a synthetic clip task with ``write_shards`` and times, with the library's own code and in the batches
``encoding.encode_clips`` forms: read (tar rows through ``stream_split``, HF ``datasets`` included), decode (at the
native rate), resample (decoding to ``--rate``, default the encoder's, minus the native decode), feature extraction
(the HF extractor or its on-device stand-in, as ``encode_batch`` calls them; none for a plain module), copies (model
inputs to the device, frames back; n/a on a CPU), encoder forward (the model's forward replayed on the inputs its
``encode_batch`` built), checks (``encoders.encode_batch`` minus what it wraps), cache write (``write_entry``). Then
``xares_hf.evaluate``'s encoding of the same shards with an empty cache (time in ``SplitEncoder.ensure_cached``) and
its ratio to forward + decode, the two costs no engine avoids. Each figure is the fastest of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import yaml

from xares_hf import encoding, evaluate
from xares_hf.data import audio_dataset, write_shards
from xares_hf.embedding_cache import EmbeddingCache, SplitEmbeddings
from xares_hf.encoders import TransformersEncoder, encode_batch, load_encoder
from xares_hf.protocols import get_protocol
from xares_hf.store import Rows
from xares_hf.tasks import TaskCard, load_task

from stage_timing import (fastest, first_tensor, model_calls, moved, replay, synchronizer, timed, timed_ensure_cached,
                          timed_inputs)

TASK = "stage_costs"
SPLITS = ("train", "valid", "test")


# ------------------------------------------------------------------------------------------- the synthetic task

def split_sizes(clips: int) -> dict[str, int]:
    """Clips per split: valid and test an eighth each (at least 2: the probe needs them), train the rest."""
    if clips < 6:
        raise SystemExit(f"--clips must be at least 6 (2 per split), got {clips}")
    held = max(2, clips // 8)
    return {"train": clips - 2 * held, "valid": held, "test": held}


def _write_shard(path: str, split: str, start: int, seconds: list[float], rate: int, fmt: str, classes: int,
                 seed: int) -> str:
    """One shard of noise-and-tone clips whose JSON holds a class index (each shard in a process of its own)."""
    def samples() -> Iterator[tuple[str, np.ndarray, int, dict]]:
        for i, length in enumerate(seconds, start):
            rng = np.random.default_rng([seed, SPLITS.index(split), i])
            n = max(1, int(round(length * rate)))
            tone = np.sin(2 * np.pi * rng.uniform(100, 4000) / rate * np.arange(n))
            audio = (rng.uniform(0.05, 0.3) * rng.standard_normal(n) + rng.uniform(0, 0.3) * tone).astype(np.float32)
            yield f"{split}_{i:07d}", audio, rate, {"label": i % classes}

    return write_shards(samples(), path, fmt=fmt)[0]


def write_task(root: Path, clips: int, seconds: tuple[float, float], rate: int, fmt: str = "flac",
               shard_clips: int = 500, classes: int = 4, seed: int = 0) -> tuple[Path, dict[str, list[str]]]:
    """``<root>/cards/stage_costs.yaml`` and its shards ``<root>/stage_costs/<split>-NNNNNN.tar`` of at most
    ``shard_clips`` clips (written in parallel); returns the card's path and each split's shards."""
    low, high = seconds
    if not 0 < low <= high:
        raise SystemExit(f"--seconds needs 0 < A <= B, got {low} {high}")
    lengths = iter(np.random.default_rng(seed).uniform(low, high, size=clips).tolist())
    jobs, files = [], {}
    for split, count in split_sizes(clips).items():
        files[split] = [str(root / TASK / f"{split}-{k:06d}.tar") for k in range(-(-count // shard_clips))]
        for k, path in enumerate(files[split]):
            chunk = [next(lengths) for _ in range(min(shard_clips, count - k * shard_clips))]
            jobs.append((path, split, k * shard_clips, chunk, rate, fmt, classes, seed))
    (root / TASK).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        list(pool.map(_write_shard, *zip(*jobs)))
    card = {
        "name": TASK, "formal_name": "Stage costs (synthetic clips)", "domain": "speech", "task_type": "clip",
        "metric": "accuracy", "eval_weight": split_sizes(clips)["test"], "knn": False, "private": True,
        "description": f"Synthetic noise and tones, {clips} clips of {low:g}-{high:g} s at {rate} Hz ({fmt}), labels "
                       f"i mod {classes}: for timing the encoding data path (scripts/stage_costs.py).",
        "data": {"splits": {s: f"{s}-*.tar" for s in SPLITS}, "crop_length": None},
        "labels": {"kind": "index", "field": "label", "num_classes": classes},
        "probe": {"epochs": 1, "learning_rate": 0.001, "batch_size": 32, "batch_size_encode": 16},
    }
    path = root / "cards" / f"{TASK}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path, files


# ------------------------------------------------------------------------------------------- instruments

def encoding_batches(waves: list[np.ndarray], size: int) -> list[list[int]]:
    """Indices of the batches ``encoding.encode_clips`` forms from one shard's clips: windows of
    ``SORT_WINDOW_BATCHES`` batches (fewer past ``SORT_WINDOW_BYTES``), each sorted by length, cut into ``size``."""
    batches: list[list[int]] = []
    pending: list[int] = []
    held = 0
    for i, wave in enumerate(waves):
        pending.append(i)
        held += wave.nbytes
        if len(pending) == encoding.SORT_WINDOW_BATCHES * size or held >= encoding.SORT_WINDOW_BYTES or i == len(waves) - 1:
            pending.sort(key=lambda j: waves[j].shape[0])
            batches += [pending[k : k + size] for k in range(0, len(pending), size)]
            pending, held = [], 0
    return batches


def end_to_end(model: str | Path, card: Path, data_dir: Path, cache_dir: Path, device: str,
               mixed_precision: str | None = None, decode_workers: int | None = None) -> dict:
    """``xares_hf.evaluate`` on the task with an empty cache: seconds in ``ensure_cached`` (all splits), the task's
    ``encode_s`` and the clips this run encoded (summed from each shard's encoding log)."""
    kwargs: dict[str, Any] = {}
    if decode_workers is not None:
        if "decode_workers" in inspect.signature(evaluate).parameters:
            kwargs["decode_workers"] = decode_workers
        else:
            print("  (this xares_hf's evaluate takes no decode_workers: --decode-workers ignored)", flush=True)
    with timed_ensure_cached() as calls:
        results = evaluate(str(model), tasks=[str(card)], data_dir=str(data_dir), cache_dir=str(cache_dir), output_dir=None,
                           device=device, knn=False, download=False, mixed_precision=mixed_precision, **kwargs)
    encoded = sum(sum(c["split_encoder"].cache.read_log(TASK, key)["encoded_per_process"])
                  for c in calls for key in c["split_encoder"].keys)
    return {"encode_s": sum(c["seconds"] for c in calls), "per_split_s": {c["split"]: c["seconds"] for c in calls},
            "task_encode_s": results.tasks[0].timings["encode_s"], "encoded_clips": encoded,
            "decode_workers": kwargs.get("decode_workers", "evaluate's default")}


# ------------------------------------------------------------------------------------------- the stages

def read_stage(card: TaskCard, files: dict[str, list[str]]) -> tuple[float, list[tuple[str, list[dict]]]]:
    """Seconds to stream every shard's rows (``stream_split``, one shard at a time as the engine does) and the rows."""
    shards, seconds = [], 0.0
    limit = audio_dataset.member_byte_limit(card.data.max_duration)
    for split, paths in files.items():
        for path in paths:
            start = time.perf_counter()
            rows = [r for r in audio_dataset.stream_split([path], card.name, split, limit) if r["left_out"] is None]
            seconds += time.perf_counter() - start
            shards.append((split, rows))
    return seconds, shards


def row_decoder(card: TaskCard, rate: int) -> Callable[[dict], list[np.ndarray]]:
    """The library's decoding of one row at ``rate`` (the run's resampler: the default protocol's on older checkouts,
    the data layer's default since both protocols resample alike): ``decode_row`` with ``DecodeSettings`` where
    the data path has them, else ``_decode_row``; a bad clip raises."""
    resampler = getattr(get_protocol(None), "resampler", None) or audio_dataset.DEFAULT_RESAMPLER
    crop, longest = card.data.crop_length, card.data.max_duration
    if not hasattr(audio_dataset, "DecodeSettings"):
        return lambda row: list(audio_dataset._decode_row(row, rate, crop, longest, resampler)[1])
    settings = audio_dataset.DecodeSettings(rate, crop, longest, resampler)

    def decode(row: dict) -> list[np.ndarray]:
        decoded = audio_dataset.decode_row(row, settings)
        if decoded.bad is not None:
            raise RuntimeError(f"sample '{row['__key__']}' does not decode: {decoded.bad}")
        return decoded.clips if decoded.clips is not None else list(audio_dataset._lazy_clips(row, settings))

    return decode


def decode_stage(card: TaskCard, shards: list[tuple[str, list[dict]]], rate: int) -> tuple[float, list[list[np.ndarray]]]:
    """Seconds to decode every row at ``rate``, and the clips of each shard."""
    decode = row_decoder(card, rate)
    start = time.perf_counter()
    clips = [[clip for row in rows for clip in decode(row)] for _, rows in shards]
    return time.perf_counter() - start, clips


def encoder_timings(encoder: torch.nn.Module, batches: list[list[np.ndarray]]) -> tuple[dict, list]:
    """Seconds of the inputs' building, their copies, the raw forward, the encoder's own ``encode_batch`` and the
    checking ``encoders.encode_batch`` over the batches, each timed apart; and the checked outputs."""
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    sync, gpu = synchronizer(device), device.type == "cuda"
    times: dict[str, float | None] = {"features": None, "h2d": 0.0, "d2h": 0.0, "forward": 0.0, "own": None}
    with torch.inference_mode():
        if isinstance(encoder, TransformersEncoder):
            with timed_inputs(encoder, sync) as builders, model_calls(encoder.model) as calls:
                times["own"] = timed(lambda: [encoder.encode_batch(b) for b in batches], sync)[0]
            if not calls:
                raise RuntimeError(f"{type(encoder.model).__name__} was never called by encode_batch: no forward to time")
            times["features"] = sum(b.seconds for b in builders)
            for call in calls:
                if gpu:
                    host = moved(*call[:2], lambda t: t.cpu())
                    times["h2d"] += timed(lambda: moved(*host, lambda t: t.to(device)), sync)[0]
                seconds, out = timed(lambda: replay(encoder.model, call), sync)
                times["forward"] += seconds
                if gpu:
                    times["d2h"] += timed(lambda: first_tensor(out).float().cpu(), sync)[0]
        elif getattr(encoder, "encode_batch", None) is not None:  # another wrapper: its encode_batch is its forward
            times["forward"] = timed(lambda: [encoder.encode_batch(b) for b in batches], sync)[0]
        else:  # a plain module, on zero-padded batches as encode_batch pads them
            host = [torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in b], batch_first=True) for b in batches]
            inputs = [x.to(device) for x in host]
            times["forward"], outs = timed(lambda: [encoder(x) for x in inputs], sync)
            if gpu:
                times["h2d"] = timed(lambda: [x.to(device) for x in host], sync)[0]
                times["d2h"] = timed(lambda: [first_tensor(o).cpu() for o in outs], sync)[0]
        times["contract"], outputs = timed(lambda: [encode_batch(encoder, b) for b in batches], sync)
    if not gpu:
        times["h2d"] = times["d2h"] = None
    return times, outputs


def cache_write_stage(shards: list[tuple[str, list[dict]]], frames: list[list[np.ndarray]],
                      waves: list[list[np.ndarray]], rate: int, folder: Path) -> float:
    """Seconds of ``EmbeddingCache.save`` (``write_entry``) of each shard's pooled embeddings and records."""
    cache, seconds = EmbeddingCache(folder), 0.0
    for i, ((_, rows), shard_frames, clips) in enumerate(zip(shards, frames, waves)):
        pooled = np.stack([f.mean(axis=0) for f in shard_frames]).astype(np.float32)
        part = SplitEmbeddings(Rows.from_array(pooled), [r["__key__"] for r in rows], [r["__url__"] for r in rows],
                               [json.loads(r["json"]) for r in rows], np.array([c.shape[0] / rate for c in clips]))
        seconds += timed(lambda: cache.save(TASK, f"stage-costs-{i}", part), lambda: None)[0]
    return seconds


# ------------------------------------------------------------------------------------------- the run

def resolve_encoder(name: str, work: Path) -> str:
    """What ``load_encoder`` and ``evaluate`` get: a built-in name, a folder, or a random wav2vec2 saved for the run."""
    if name != "random-wav2vec2":
        return name
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from paper_scale_tasks import save_random_wav2vec2

    return str(save_random_wav2vec2(work / "random-wav2vec2"))


def measure(args: argparse.Namespace) -> dict:
    """Write the task, time each stage, run ``evaluate``'s encoding; the report (seconds per stage, ratios)."""
    work = Path(args.work).expanduser() if args.work else Path(tempfile.mkdtemp(prefix="xares-stages-"))
    data = work / f"data-{args.clips}x{args.seconds[0]:g}-{args.seconds[1]:g}s-{args.native_rate}-{args.format}"
    card_path, files = write_task(data, args.clips, tuple(args.seconds), args.native_rate, args.format)
    card = load_task(card_path)
    model = resolve_encoder(args.encoder, work)
    encoder = load_encoder(model, device=args.device)
    rate = int(encoder.sampling_rate)
    target = args.rate or rate
    split, paths = next(iter(files.items()))  # a warm-up: imports and first calls are no stage's cost
    few = [(split, read_stage(card, {split: paths[:1]})[1][0][1][:2])]
    for r in {args.native_rate, target}:
        decode_stage(card, few, r)
    encoder_timings(encoder, decode_stage(card, few, rate)[1])

    read_s, shards = fastest(args.repeats, lambda: read_stage(card, files))
    decode_s, native = fastest(args.repeats, lambda: decode_stage(card, shards, args.native_rate))
    resample_s, at_target = None, native
    if target != args.native_rate:
        to_target_s, at_target = fastest(args.repeats, lambda: decode_stage(card, shards, target))
        resample_s = to_target_s - decode_s
    waves = at_target if target == rate else decode_stage(card, shards, rate)[1]
    plan = [(s, batch) for s, clips in enumerate(waves) for batch in encoding_batches(clips, card.probe.batch_size_encode)]
    timings = []
    for _ in range(args.repeats):  # the outputs of the last run only are kept
        times, checked = encoder_timings(encoder, [[waves[s][i] for i in batch] for s, batch in plan])
        timings.append(times)
    best = {k: None if v is None else min(t[k] for t in timings) for k, v in timings[0].items()}
    frames: list[list[Any]] = [[None] * len(clips) for clips in waves]
    for (s, batch), outputs in zip(plan, checked):
        for i, clip_frames in zip(batch, outputs):
            frames[s][i] = clip_frames
    cache_s = fastest(args.repeats, lambda: (cache_write_stage(shards, frames, waves, rate, work / "stage-cache"), None))[0]
    del encoder, checked  # the end-to-end run loads its own
    e2e = min((end_to_end(model, card_path, data, work / f"cache-{time.time_ns()}", args.device,
                          decode_workers=args.decode_workers) for _ in range(args.repeats)), key=lambda e: e["encode_s"])
    clips = sum(len(c) for c in waves)
    if e2e["encoded_clips"] != clips:
        raise RuntimeError(f"evaluate encoded {e2e['encoded_clips']} clips, the stages {clips}: not the same data")
    copies = (best["h2d"] or 0.0) + (best["d2h"] or 0.0)
    wrapped = best["own"] if best["own"] is not None else best["forward"] + copies
    rest = None if best["features"] is None else best["own"] - best["features"] - best["forward"] - copies
    seconds = {"read": read_s, "decode": decode_s, "resample": resample_s, "feature extraction": best["features"],
               "copies host -> device": best["h2d"], "copies device -> host": best["d2h"], "encoder forward": best["forward"],
               "checks": best["contract"] - wrapped, **({} if rest is None else {"encode_batch rest": rest}),
               "cache write": cache_s}
    total = sum(v for v in seconds.values() if v is not None)
    floor = best["forward"] + decode_s
    return {
        "command": "python scripts/benchmark.py --stages " + " ".join(args.argv),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores, torch {torch.__version__} on {torch.get_num_threads()} "
                   f"threads, device {args.device}",
        "encoder": args.encoder, "encoder_rate": rate, "resample_to": target, "native_rate": args.native_rate,
        "format": args.format, "clips": clips, "audio_s": sum(c.shape[0] for s in native for c in s) / args.native_rate,
        "seconds": args.seconds, "repeats": args.repeats, "stages_s": seconds, "sum_of_stages_s": total,
        "end_to_end": e2e, "rest_of_end_to_end_s": e2e["encode_s"] - total,
        "ratio_end_to_end_to_forward_plus_decode": e2e["encode_s"] / floor,
        "ratio_end_to_end_to_forward_plus_decode_resample": e2e["encode_s"] / (floor + (resample_s or 0.0)),
        "work": str(work),
    }


NOT_APPLICABLE = {"resample": "n/a (the files are at that rate)", "feature extraction": "n/a (a plain module)",
                  "copies host -> device": "n/a (on the CPU)", "copies device -> host": "n/a (on the CPU)"}


def print_report(report: dict) -> None:
    """The table: stage, total seconds, milliseconds per clip, share of the end-to-end encoding."""
    clips, e2e = report["clips"], report["end_to_end"]["encode_s"]
    low, high = report["seconds"]
    print(f"{report['encoder']} ({report['encoder_rate']} Hz), {clips} clips of {low:g}-{high:g} s ({report['audio_s']:.0f} s "
          f"of audio), {report['format']} at {report['native_rate']} Hz; {report['machine']}; fastest of {report['repeats']}")
    labels = {"read": "read (stream_split rows)", "decode": f"decode (native {report['native_rate']} Hz)",
              "resample": f"resample (to {report['resample_to']} Hz)", "checks": "checks (encode_batch wrapper)",
              "cache write": "cache write (write_entry)"}
    rows = [(labels.get(k, k), v, NOT_APPLICABLE.get(k, "n/a")) for k, v in report["stages_s"].items()] + [
        ("sum of the stages", report["sum_of_stages_s"], ""), ("end to end (evaluate: ensure_cached)", e2e, ""),
        ("end to end minus the stages", report["rest_of_end_to_end_s"], "")]
    width = max(len(label) for label, _, _ in rows)
    print(f"  {'stage'.ljust(width)}  {'total s':>9}  {'ms/clip':>8}  {'share':>6}")
    for label, value, missing in rows:
        figures = missing if value is None else f"{value:9.3f}  {1000 * value / clips:8.3f}  {100 * value / e2e:5.1f}%"
        print(f"  {label.ljust(width)}  {figures}")
    print(f"  end to end / (forward + decode): {report['ratio_end_to_end_to_forward_plus_decode']:.2f}; "
          f"/ (forward + decode + resample): {report['ratio_end_to_end_to_forward_plus_decode_resample']:.2f}; "
          f"task encode_s {report['end_to_end']['task_encode_s']:.3f} s; clips encoded {report['end_to_end']['encoded_clips']}",
          flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``benchmark.py --stages`` (also of this script run directly)."""
    parser = argparse.ArgumentParser(prog="benchmark.py --stages", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--seconds", type=float, nargs=2, default=[1.0, 1.0], metavar=("A", "B"),
                        help="clip lengths, uniform in [A, B] seconds")
    parser.add_argument("--native-rate", type=int, default=16_000, help="sampling rate of the audio files")
    parser.add_argument("--rate", type=int, help="rate the resample stage decodes to (default: the encoder's)")
    parser.add_argument("--format", default="flac", choices=["flac", "wav"])
    parser.add_argument("--encoder", default="log-mel", help="log-mel, a transformers folder, or random-wav2vec2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each stage and of evaluate; the fastest counts")
    parser.add_argument("--decode-workers", type=int, help="passed to evaluate where it takes decode_workers")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (1: robust to other work on a shared machine)")
    parser.add_argument("--work", help="folder for the shards, models and caches (default: a new temporary one)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no GPU here")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> dict:
    """Measure, print the table, write the JSON; return the report."""
    args = parse_args(argv)
    for name in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE"):
        os.environ.setdefault(name, "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    report = measure(args)
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()

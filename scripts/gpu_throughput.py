"""GPU throughput of base-size stand-ins (random weights): the raw forward against ``evaluate``'s encoding (target 80 %).

    python scripts/gpu_throughput.py [--out gpu_throughput.json] [--device cuda] [--clips 2000] [--seconds 1 15]
        [--families wav2vec2-base hubert-base wav2vec2-large-ln whisper-base] [--precisions fp32 bf16]
        [--decode-workers N] [--work DIR]
    python scripts/gpu_throughput.py --device cpu --clips 24 --small      (a dry run: small configs, a few clips)

Builds each family's model from a ``transformers`` config with random weights (no download) and saves it with its
feature extractor: wav2vec2-base (group-normed front end, ``Wav2Vec2Config()``), HuBERT-base (``HubertConfig()``),
a layer-normed wav2vec2-large-style model (317 M parameters; its extractor returns an attention mask) and the
encoder of Whisper-base (d_model 512, 6 layers; its decoder, never run, kept tiny). Writes one clip task: ``--clips``
clips of lengths uniform in ``--seconds``, 16 kHz FLAC, in shards of 500 clips. For each family and precision
(fp32; bf16 too for the large model; ``--precisions`` sets them for all) it prints, as soon as it has them:

- the raw forward: the model's forward replayed on the inputs the encoder built for the batches the engine forms
  (16 clips, sorted by length within windows), already on the device, one warm-up, timed between two
  ``torch.cuda.synchronize()``;
- the first pass of ``encoders.encode_batch`` over those batches (features, copies, checks and forward; it also
  warms every batch shape up, so it is a ceiling);
- the end-to-end encoding of ``xares_hf.evaluate`` on the same split with an empty cache (time in
  ``SplitEncoder.ensure_cached``), and its throughput as a share of the raw forward's, against the 80 % target;

then bf16 against fp32 for the large model. The JSON (``--out``) is rewritten after every run, so a run cut short
keeps its figures. Expected on an H200 (16 cores) with 2000 clips (4.4 h of audio): the split written and decoded in
well under a minute (20 s on 2 CPU cores), then five forward-bound runs of under a minute each, 4-6 minutes in all;
``--clips`` shrinks it. Progress bars go to stderr: ``2> log`` keeps them out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stage_costs import TASK, encoding_batches, end_to_end, model_calls, replay, synchronizer, timed, write_task  # noqa: E402

from xares_hf import distributed  # noqa: E402
from xares_hf.data import AudioSample, iter_audio  # noqa: E402
from xares_hf.encoders import encode_batch, load_encoder  # noqa: E402
from xares_hf.tasks import load_task  # noqa: E402

FAMILIES = ("wav2vec2-base", "hubert-base", "wav2vec2-large-ln", "whisper-base")
DEFAULT_PRECISIONS = {"wav2vec2-large-ln": ("fp32", "bf16")}
TARGET = 0.8
SMALL_W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)


def save_family(family: str, folder: Path, small: bool = False) -> Path:
    """The family's stand-in with random weights and its feature extractor, saved with ``save_pretrained``."""
    import transformers as tf

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    layer_norm = dict(feat_extract_norm="layer", do_stable_layer_norm=True)
    if family == "wav2vec2-base":
        model, extractor = tf.Wav2Vec2Model(tf.Wav2Vec2Config(**(SMALL_W2V if small else {}))), tf.Wav2Vec2FeatureExtractor()
    elif family == "hubert-base":
        model, extractor = tf.HubertModel(tf.HubertConfig(**(SMALL_W2V if small else {}))), tf.Wav2Vec2FeatureExtractor()
    elif family == "wav2vec2-large-ln":
        dims = {**SMALL_W2V, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128} if small else LARGE
        model = tf.Wav2Vec2Model(tf.Wav2Vec2Config(**dims, **layer_norm))
        extractor = tf.Wav2Vec2FeatureExtractor(return_attention_mask=True)
    elif family == "whisper-base":
        encoder = dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64) if small else dict(
            d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048)
        config = tf.WhisperConfig(**encoder, num_mel_bins=80, decoder_layers=1, decoder_attention_heads=2,
                                  decoder_ffn_dim=64, vocab_size=64, max_target_positions=16, pad_token_id=0,
                                  bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
        model, extractor = tf.WhisperModel(config), tf.WhisperFeatureExtractor()
    else:
        raise SystemExit(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def decoded_batches(card_path: Path, files: dict[str, list[str]], rate: int) -> list[list[np.ndarray]]:
    """Every clip decoded by ``iter_audio`` at ``rate``, in the batches the engine forms shard by shard."""
    card = load_task(card_path)
    batches = []
    for split, paths in files.items():
        for path in paths:
            clips = [s.audio for s in iter_audio([path], rate, TASK, split, max_duration=card.data.max_duration)
                     if isinstance(s, AudioSample)]
            batches += [[clips[i] for i in batch] for batch in encoding_batches(clips, card.probe.batch_size_encode)]
    return batches


def raw_forward(encoder: torch.nn.Module, batches: list[list[np.ndarray]], precision: str) -> dict:
    """Seconds of the first ``encode_batch`` pass (which records the model's inputs, on the device) and of the
    model's forward replayed on them after one warm-up call."""
    device = next(encoder.parameters()).device
    sync = synchronizer(device)
    mixed = None if precision == "fp32" else precision
    with torch.inference_mode(), distributed.autocast(device, mixed):
        with model_calls(encoder.model) as calls:
            first_s = timed(lambda: [encode_batch(encoder, b) for b in batches], sync)[0]
        if not calls:
            raise RuntimeError(f"{type(encoder.model).__name__} was never called by encode_batch: no forward to time")
        timed(lambda: replay(encoder.model, calls[0]), sync)

        def forward_all() -> None:
            for call in calls:
                replay(encoder.model, call)

        forward_s = timed(forward_all, sync)[0]
    return {"forward_s": forward_s, "encode_batch_first_pass_s": first_s, "model_calls": len(calls)}


def rates(clips: int, audio_s: float, seconds: float) -> dict:
    """Seconds, clips per second and seconds of audio per second."""
    return {"seconds": round(seconds, 3), "clips_per_s": round(clips / seconds, 1), "audio_s_per_s": round(audio_s / seconds, 1)}


def run_one(family: str, precision: str, folder: Path, batches: list[list[np.ndarray]], card: Path, data: Path,
            args: argparse.Namespace, work: Path) -> dict:
    """The raw forward, the first encode_batch pass and evaluate's encoding of one family at one precision."""
    clips, audio_s = sum(len(b) for b in batches), sum(w.shape[0] for b in batches for w in b) / 16_000
    encoder = load_encoder(str(folder), device=args.device)
    raw = raw_forward(encoder, batches, precision)
    paths = getattr(encoder, "fast_paths", lambda: None)()  # where the encoder has them (device features, batched norm)
    del encoder
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    e2e = end_to_end(folder, card, data, work / f"cache-{family}-{precision}-{time.time_ns()}", args.device,
                     mixed_precision=None if precision == "fp32" else precision, decode_workers=args.decode_workers)
    if e2e["encoded_clips"] != clips:
        raise RuntimeError(f"{family} {precision}: evaluate encoded {e2e['encoded_clips']} clips of {clips}")
    row = {"family": family, "precision": precision, "clips": clips, "audio_s": round(audio_s, 1),
           "parameters_m": round(_parameters(folder) / 1e6, 2), "model_calls": raw["model_calls"],
           "fast_paths": None if paths is None else {"device_features": paths[0], "batched_group_norm": paths[1]},
           "raw_forward": rates(clips, audio_s, raw["forward_s"]),
           "encode_batch_first_pass": rates(clips, audio_s, raw["encode_batch_first_pass_s"]),
           "end_to_end": {**rates(clips, audio_s, e2e["encode_s"]), "task_encode_s": e2e["task_encode_s"],
                          "per_split_s": e2e["per_split_s"], "decode_workers": e2e["decode_workers"]}}
    row["end_to_end_share_of_raw"] = round(raw["forward_s"] / e2e["encode_s"], 3)
    row["meets_target"] = row["end_to_end_share_of_raw"] >= TARGET
    return row


def _parameters(folder: Path) -> int:
    """Parameters in the saved model's safetensors files (Whisper's: its tiny decoder too)."""
    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            total += sum(int(np.prod(handle.get_slice(k).get_shape())) for k in handle.keys())
    return total


def print_row(row: dict) -> None:
    """One run's figures on one line, flushed at once so that a run cut short still shows them."""
    raw, first, e2e = row["raw_forward"], row["encode_batch_first_pass"], row["end_to_end"]
    print(f"{row['family']} ({row['parameters_m']} M) {row['precision']}: raw forward {raw['clips_per_s']} clips/s "
          f"({raw['audio_s_per_s']} s of audio/s, {raw['seconds']} s, {row['model_calls']} calls) | first encode_batch "
          f"pass {first['clips_per_s']} clips/s | end to end {e2e['clips_per_s']} clips/s ({e2e['seconds']} s) | "
          f"end to end / raw {100 * row['end_to_end_share_of_raw']:.1f} % (target {100 * TARGET:.0f} %: "
          f"{'met' if row['meets_target'] else 'not met'})", flush=True)


def compare_precisions(runs: list[dict]) -> dict:
    """bf16 against fp32 of each family run at both: speed-ups of the raw forward and of the end-to-end encoding."""
    out = {}
    for family in {r["family"] for r in runs}:
        by = {r["precision"]: r for r in runs if r["family"] == family}
        if "fp32" in by and "bf16" in by:
            out[family] = {f"{kind}_speedup": round(by["fp32"][kind]["seconds"] / by["bf16"][kind]["seconds"], 2)
                           for kind in ("raw_forward", "end_to_end")}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_throughput.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--seconds", type=float, nargs=2, default=[1.0, 15.0], metavar=("A", "B"))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16", "fp16"],
                        help="for every family (default: fp32, and bf16 too for wav2vec2-large-ln)")
    parser.add_argument("--small", action="store_true", help="small configs (a dry run on a CPU)")
    parser.add_argument("--decode-workers", type=int, help="passed to evaluate where it takes decode_workers")
    parser.add_argument("--work", help="folder for the shards, models and caches (default: a new temporary one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Write the split, then measure each family at each precision, printing and saving as it goes."""
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no GPU here (use --device cpu --small for a dry run)")
    work = Path(args.work).expanduser() if args.work else Path(tempfile.mkdtemp(prefix="xares-gpu-throughput-"))
    started = time.perf_counter()
    data = work / f"data-{args.clips}x{args.seconds[0]:g}-{args.seconds[1]:g}s"
    card, files = write_task(data, args.clips, tuple(args.seconds), 16_000, "flac", shard_clips=500)
    batches = decoded_batches(card, files, 16_000)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"none ({args.device} dry run)"
    report = {"command": "python scripts/gpu_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "gpu": gpu, "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "small": args.small, "clips": args.clips, "seconds": args.seconds, "target": TARGET, "runs": []}
    print(f"GPU {gpu}, torch {torch.__version__}; {args.clips} clips of {args.seconds[0]:g}-{args.seconds[1]:g} s "
          f"written and decoded in {time.perf_counter() - started:.1f} s ({work})", flush=True)
    for family in args.families:
        folder = save_family(family, work / "models" / f"{family}{'-small' if args.small else ''}", args.small)
        for precision in args.precisions or DEFAULT_PRECISIONS.get(family, ("fp32",)):
            report["runs"].append(run_one(family, precision, folder, batches, card, data, args, work))
            print_row(report["runs"][-1])
            report["bf16_vs_fp32"] = compare_precisions(report["runs"])
            report["elapsed_s"] = round(time.perf_counter() - started, 1)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for family, speedups in report.get("bf16_vs_fp32", {}).items():
        print(f"{family} bf16 vs fp32: raw forward x{speedups['raw_forward_speedup']}, "
              f"end to end x{speedups['end_to_end_speedup']}", flush=True)
    print(f"done in {report.get('elapsed_s', 0)} s; figures in {args.out}", flush=True)
    return report


if __name__ == "__main__":
    main()

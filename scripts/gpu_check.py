"""Checks and figures that need a GPU: mixed-precision encoding, all-layer encoding, the ASR probe on the device.

    python scripts/gpu_check.py [--out gpu_check.json] [--device cuda]   (--device cpu: a dry run, without fp16)

Builds randomly initialised ``transformers`` models (no download): a tiny group-normed wav2vec2 (batched with
per-clip GroupNorm statistics on the device), a tiny HuBERT (attention mask) and a tiny Whisper (log-mel made on
the device) for correctness, a wav2vec2-base-sized model for throughput. For each precision (fp32, bf16, fp16) it
encodes clips of mixed lengths on the GPU through xares-hf's encoder path and compares them with fp32 on the
CPU (cosine similarity of frames), checks ``layer="all"`` against single layers, trains the CTC ASR probe with a
learnt layer mix on the GPU, and times encoding (clips/s) at each precision. Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xares_hf import distributed
from xares_hf.encoders import encode_batch, load_encoder
from xares_hf.probes.asr import train_asr_probe

PRECISIONS = ("no", "bf16", "fp16")


def _save(kind: str, folder: Path, size: str = "tiny") -> Path:
    import transformers as tf

    torch.manual_seed(0)
    if kind == "wav2vec2-group":  # group-normed front end: batched on the GPU with per-clip GroupNorm statistics
        dims = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
        model = tf.Wav2Vec2Model(tf.Wav2Vec2Config(**dims, feat_extract_norm="group"))
        extractor = tf.Wav2Vec2FeatureExtractor()
    elif kind == "hubert":
        dims = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
        model = tf.HubertModel(tf.HubertConfig(**dims, feat_extract_norm="layer", do_stable_layer_norm=True))
        extractor = tf.Wav2Vec2FeatureExtractor(return_attention_mask=True)
    elif kind == "whisper":
        config = tf.WhisperConfig(d_model=64, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                  decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
                                  vocab_size=64, max_target_positions=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                  decoder_start_token_id=1)
        model, extractor = tf.WhisperModel(config), tf.WhisperFeatureExtractor()
    else:  # wav2vec2-base dimensions (95 M parameters), layer-normed front end so batches use the attention mask
        model = tf.Wav2Vec2Model(tf.Wav2Vec2Config(feat_extract_norm="layer", do_stable_layer_norm=True))
        extractor = tf.Wav2Vec2FeatureExtractor(return_attention_mask=True)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def _clips(n: int, seconds: tuple[float, float], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(rng.uniform(*seconds) * 16_000))).astype(np.float32) for _ in range(n)]


def _cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The lowest mean per-frame cosine similarity over clips."""
    worst = 1.0
    for x, y in zip(a, b):
        x, y = x.astype(np.float64), y.astype(np.float64)
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12)
        worst = min(worst, float(cos.mean()))
    return worst


def _encode(encoder, clips, precision: str) -> list[np.ndarray]:
    device = next(encoder.parameters()).device
    with distributed.autocast(device, precision):
        return encode_batch(encoder, clips, context="gpu check", strict_frames=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = args.device
    gpu = device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        raise SystemExit("no GPU here (use --device cpu for a dry run)")
    precisions = PRECISIONS if gpu else ("no", "bf16")
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    report: dict = {"gpu": torch.cuda.get_device_name(0) if gpu else "none (cpu dry run)", "torch": torch.__version__,
                    "checks": {}, "throughput": {}}
    root = Path(tempfile.mkdtemp())

    clips = _clips(6, (0.5, 4.0))
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions alone differ from the CPU by ~1e-3
    for kind in ("wav2vec2-group", "hubert", "whisper"):
        folder = _save(kind, root / kind)
        reference = encode_batch(load_encoder(str(folder), device="cpu", pad_whisper=False), clips)
        on_device = load_encoder(str(folder), device=device, pad_whisper=False)
        report["checks"][f"{kind} fast paths on {device} (device inputs, batched group norm)"] = list(on_device.fast_paths())
        report["checks"][f"{kind} fp32 on {device} max abs diff vs CPU"] = float(
            max(np.abs(a - b).max() for a, b in zip(encode_batch(on_device, clips), reference)))
        for precision in precisions:
            encoder = load_encoder(str(folder), device=device, pad_whisper=False)
            frames = _encode(encoder, clips, precision)
            report["checks"][f"{kind} {precision} cosine vs fp32 CPU"] = round(_cosine(frames, reference), 5)
        every = load_encoder(str(folder), layer="all", device=device, pad_whisper=False)
        stacked = encode_batch(every, clips)
        last = encode_batch(load_encoder(str(folder), layer=every.stacked_layers - 1, device=device, pad_whisper=False), clips)
        dim = every.layer_dim
        report["checks"][f"{kind} layer='all' last slice == layer=-1 (max abs diff)"] = float(
            max(np.abs(s[:, -dim:] - l).max() for s, l in zip(stacked, last)))

    # the CTC ASR probe with a learnt layer mix, trained on the GPU
    rng = np.random.default_rng(1)
    words = ["one", "two", "three"]
    def split(n):
        texts = [" ".join(rng.choice(words, size=2)) for _ in range(n)]
        frames = [rng.standard_normal((40, 3 * 16)).astype(np.float32) for _ in texts]
        return frames, texts
    train, valid = split(32), split(8)
    started = time.perf_counter()
    result = train_asr_probe(train, valid, valid[0], score=lambda h, r: float(np.mean([a == b for a, b in zip(h, r)])),
                             epochs=3, batch_size=8, device=device, layers=3)
    report["checks"][f"asr ctc probe on {device} with 3-layer mix: weights"] = [round(w, 4) for w in result.layer_weights]
    report["checks"][f"asr ctc probe on {device} seconds"] = round(time.perf_counter() - started, 2)

    # throughput of a wav2vec2-base-sized encoder (attention mask) at each precision, as a run meets it: 256 clips of
    # 2-10 s, batches of 16 of similar length, every batch a new length; masked batches padded to whole seconds on
    # the GPU (the default) or not (shape_multiple=1)
    folder = _save("base", root / "base")
    encoder = load_encoder(str(folder), device=device)
    batch = sorted(_clips(256 if gpu else 16, (2.0, 10.0), seed=2), key=len)
    for multiple in (None, 1):
        encoder.shape_multiple = multiple
        for precision in precisions:
            _encode(encoder, _clips(2, (1.0, 1.0), seed=3), precision)  # load kernels once
            sync()
            started = time.perf_counter()
            for i in range(0, len(batch), 16):
                _encode(encoder, batch[i : i + 16], precision)
            sync()
            seconds = time.perf_counter() - started
            label = f"{precision}, {'default padding' if multiple is None else 'no extra padding'}"
            report["throughput"][label] = {"clips_per_s": round(len(batch) / seconds, 1),
                                           "audio_s_per_s": round(sum(len(c) for c in batch) / 16_000 / seconds, 1)}

    width = max(len(k) for k in report["checks"])
    print(f"GPU: {report['gpu']}, torch {report['torch']}")
    for name, value in report["checks"].items():
        print(f"  {name.ljust(width)}  {value}")
    for precision, figures in report["throughput"].items():
        print(f"  wav2vec2-base-sized encoder, {precision}: {figures['clips_per_s']} clips/s, {figures['audio_s_per_s']} s of audio/s")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

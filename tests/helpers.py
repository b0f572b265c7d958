"""Things the tests make themselves: tiny random transformers models, a Hub cache layout, shards, encoders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

TINY_W2V = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)


def save_tiny_model(kind: str, folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny ``kind`` model (wav2vec2, hubert, whisper) saved with save_pretrained."""
    import transformers as tf

    torch.manual_seed(seed)
    if kind == "wav2vec2":
        model, extractor = tf.Wav2Vec2Model(tf.Wav2Vec2Config(**TINY_W2V)), tf.Wav2Vec2FeatureExtractor()
    elif kind == "hubert":
        model, extractor = tf.HubertModel(tf.HubertConfig(**TINY_W2V, feat_extract_norm="layer", do_stable_layer_norm=True)), tf.Wav2Vec2FeatureExtractor(return_attention_mask=True)
    elif kind == "whisper":
        config = tf.WhisperConfig(
            d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, vocab_size=64, max_target_positions=16,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        )
        model, extractor = tf.WhisperModel(config), tf.WhisperFeatureExtractor()
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def hub_cache_layout(model_folder: Path, cache: Path, repo_id: str, commit: str) -> Path:
    """Place a saved model in the Hub cache layout (models--org--name/snapshots/<commit>, refs/main)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


class ConstantEncoder(torch.nn.Module):
    """Ignores its input: a probe on it can only reach chance."""

    def __init__(self) -> None:
        super().__init__()
        self.sampling_rate = 16_000
        self.output_dim = 8
        self.hop_size_in_ms = 20
        self.bias = torch.nn.Parameter(torch.ones(8))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = max(1, audio.shape[1] // 320)
        return self.bias.expand(audio.shape[0], frames, 8).clone()


class CountingEncoder(torch.nn.Module):
    """Wraps another encoder and counts forward calls (to prove the cache skips encoding)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.sampling_rate, self.output_dim, self.hop_size_in_ms = inner.sampling_rate, inner.output_dim, inner.hop_size_in_ms
        self.calls = 0

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(audio)


def write_card(path: Path, **overrides) -> Path:
    """A valid clip-task card, with fields overridden (``None`` removes a field)."""
    card = {
        "name": "toy",
        "formal_name": "Toy task",
        "domain": "sound",
        "task_type": "clip",
        "metric": "accuracy",
        "eval_weight": 10,
        "data": {"splits": {"train": "train-*.tar", "valid": "valid-*.tar", "test": "test-*.tar"}},
        "labels": {"kind": "class_name", "field": "label", "num_classes": 2, "classes": ["low", "high"]},
        "probe": {"epochs": 5, "learning_rate": 0.01, "batch_size": 8, "batch_size_encode": 4},
    }
    for key, value in overrides.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def tone(freq: float, seconds: float = 0.5, sr: int = 16_000) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


SR = 16_000
TONES = {"beep": 1000.0, "hum": 150.0, "whistle": 3000.0, "chirp": 500.0}


def tone_at(freq: float, seconds: float, onset: float, offset: float, sr: int = SR) -> np.ndarray:
    """Silence (a little noise) with a tone between onset and offset seconds."""
    rng = np.random.default_rng(int(freq * 1000 + onset * 100))
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.003 * rng.standard_normal(t.size)
    span = (t >= onset) & (t < offset)
    wave[span] += 0.4 * np.sin(2 * np.pi * freq * t[span])
    return wave.astype(np.float32)


def write_task(root: Path, name: str, card: dict, make_split) -> Path:
    """Write train/valid/test shards from ``make_split(split) -> [(key, wave, meta)]`` and the card; returns the card path."""
    from xares_hf.data import write_shards

    for split in ("train", "valid", "test"):
        write_shards([(k, w, SR, m) for k, w, m in make_split(split)], root / name / f"{split}-%03d.tar")
    card = {"name": name, "formal_name": name, "domain": "sound", "eval_weight": 10, "knn": False,
            "data": {"splits": {s: f"{s}-*.tar" for s in ("train", "valid", "test")}}, **card}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def save_tiny_qwen2(folder, texts: list[str], separator: bool = True, seed: int = 0, init: float = 0.02):
    """A small byte-level BPE tokenizer trained on ``texts`` and a randomly initialised tiny Qwen2, saved.

    Byte-level like Qwen's own: transformers 5 reloads this folder as a ``Qwen2Tokenizer`` (from config.json's
    model_type), which imposes Qwen's byte-level pre-tokenizer; a Metaspace vocabulary would then lose its spaces.
    """
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>"] + (["<|vision_end|>"] if separator else [])
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=48, special_tokens=specials))
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    config = tf.Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        vocab_size=len(fast), max_position_embeddings=512, tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, bos_token_id=None, initializer_range=init,
    )
    torch.manual_seed(seed)
    tf.Qwen2ForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder

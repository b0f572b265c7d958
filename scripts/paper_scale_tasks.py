"""The paper-scale task table, synthetic shards in X-ARES layout and a random-projection stand-in encoder.

Used by ``scripts/paper_scale.py``. Each of the 22 shipped cards keeps its task type, labels, metric and probe
settings; only the data is synthetic (noise and tones, 16 kHz), with split sizes and clip durations taken from the
original datasets' published statistics (``SIZES`` below), scaled by F. Shards are named after the card's own
patterns (``wds-audio-train*.tar`` -> ``wds-audio-train-000000.tar``) under ``<root>/<task>/``.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from xares_hf.data import write_shards
from xares_hf.suites.mini.common import rng_for
from xares_hf.tasks import TaskCard, load_task

SR = 16_000
FORMAT_VERSION = 1  # bump when the generated audio or labels change, so old work folders are rebuilt


@dataclass(frozen=True)
class Size:
    """One task's splits (clips; ``folds`` = clips per fold) and mean clip length; ``estimated`` names guessed fields."""

    train: int
    valid: int
    test: int
    seconds: float
    fixed: bool  # every clip has the same length (else lengths spread uniformly over 0.5..1.5 x the mean)
    estimated: str
    source: str
    eval_seconds: float | None = None  # mean length of valid/test clips when it differs from train's


# test = the card's eval_weight (X-ARES' test subset) except LibriSpeech (weight 10000; test-clean has 2620 clips).
# k-fold tasks: train/valid/test all hold the clips per fold. "-" in estimated: every figure is published.
SIZES: dict[str, Size] = {
    "asvspoof2015": Size(16375, 2000, 2000, 3.5, False, "valid seconds", "ASVspoof 2015 train 16,375; X-ARES subsets dev/eval"),
    "clotho": Size(3839, 1045, 1045, 22.5, False, "-", "Clotho v2.1: 3,839 / 1,045 / 1,045 clips of 15-30 s"),
    "cremad": Size(5209, 1117, 1116, 2.5, False, "train valid", "CREMA-D 7,442 clips, 70/15/15 assumed"),
    "desed": Size(10000, 1153, 1153, 10.0, True, "train", "DCASE 2021 task 4 synthetic train 10,000 x 10 s; eval=valid"),
    "esc50": Size(400, 400, 400, 5.0, True, "-", "ESC-50: 2,000 x 5 s in 5 folds of 400"),
    "fluentspeechcommands": Size(23132, 3118, 2000, 2.3, False, "seconds", "FSC 23,132 / 3,118 / 3,793 (X-ARES test 2,000)"),
    "freemusicarchive": Size(6400, 800, 800, 30.0, True, "-", "FMA small: 8,000 x 30 s, 80/10/10"),
    "fsd50k": Size(36796, 4170, 2000, 7.6, False, "-", "FSD50K dev 36,796 + val 4,170, mean 7.6 s (X-ARES eval 2,000)"),
    "fsdkaggle2018": Size(9473, 1600, 1600, 6.8, False, "seconds", "FSDKaggle2018 train 9,473, test 1,600; valid=test"),
    "gtzan_genre": Size(100, 100, 100, 30.0, True, "-", "GTZAN: 1,000 x 30 s in 10 folds of 100"),
    "libricount": Size(1144, 1144, 1144, 5.0, True, "-", "LibriCount: 5,720 x 5 s in 5 folds"),
    "librispeech": Size(28539, 2703, 2620, 12.7, False, "-", "LibriSpeech train-clean-100 (100.6 h), dev/test-clean (5.4 h each)", 7.3),
    "librispeechmalefemale": Size(28539, 2703, 2620, 12.7, False, "-", "LibriSpeech train-clean-100, dev/test-clean", 7.3),
    "maestro": Size(400, 60, 65, 560.0, False, "train valid", "MAESTRO v3: 1,276 performances, 198.7 h (mean 560 s)"),
    "nsynthinstument": Size(289205, 12678, 2000, 4.0, True, "-", "NSynth: 289,205 / 12,678 / 4,096 x 4 s (X-ARES test 2,000)"),
    "ravdess": Size(360, 360, 360, 3.7, False, "-", "RAVDESS speech: 1,440 clips in 4 folds, ~3.7 s"),
    "speechcommandsv1": Size(51088, 6798, 2000, 1.0, True, "-", "Speech Commands v1: 51,088 / 6,798 / 6,835 x 1 s"),
    "urbansound8k": Size(873, 873, 873, 3.6, False, "-", "UrbanSound8K: 8,732 clips <= 4 s in 10 folds"),
    "vocalimitations": Size(1867, 1867, 1867, 4.0, False, "seconds", "Vocal Imitation Set: 5,601 imitations, 3 folds"),
    "vocalsound": Size(15570, 1860, 2000, 4.0, False, "seconds", "VocalSound: 15,570 / 1,860 / 3,594 (X-ARES test 2,000)"),
    "voxceleb1": Size(138361, 6904, 2000, 8.2, False, "-", "VoxCeleb1 iden: 138,361 / 6,904 / 8,251, mean 8.2 s"),
    "voxlingua33": Size(30000, 1609, 1609, 10.0, False, "train seconds", "VoxLingua107, 33 languages; dev 1,609; valid=test"),
}

WORDS = ("THE AND OF TO A IN HE THAT WAS IT HIS I WITH AS HAD FOR YOU HER BUT IS NOT SHE AT ON BE "
         "HIM THEY BY SO ALL THIS WERE WHICH MY FROM ONE SAID THERE ME HAVE OR WHEN WE AN NO THEM WOULD "
         "MAN LITTLE GREAT HOUSE NIGHT CAME LONG THOUGHT OLD AGAIN HAND DOOR WATER LIFE EYES").split()
SOUNDS = "dog bird car rain wind door bell engine crowd water footsteps music train siren".split()


def size_table() -> str:
    """The table of split sizes and durations, one line per task, with which figures are estimates."""
    rows = [f"{'task':22} {'train':>7} {'valid':>6} {'test':>6} {'mean s':>7}  estimated        source"]
    for name, s in SIZES.items():
        rows.append(f"{name:22} {s.train:7d} {s.valid:6d} {s.test:6d} {s.seconds:7.1f}  {s.estimated:15}  {s.source}")
    return "\n".join(rows)


def split_counts(card: TaskCard, f: float, train_clips: int | None = None, eval_clips: int | None = None) -> dict[str, int]:
    """Clips to write per shard group (split, or ``fold<k>``) at scale ``f``; overrides fix train / valid+test sizes."""
    size = SIZES[card.name]
    scaled = lambda n: max(2, int(round(n * f)))  # noqa: E731
    if card.is_k_fold:
        return {group: eval_clips or scaled(size.test) for group in card.data.patterns()}
    counts = {"train": train_clips or scaled(size.train), "valid": eval_clips or scaled(size.valid),
              "test": eval_clips or scaled(size.test)}
    if card.data.splits["valid"] == card.data.splits["test"]:
        del counts["valid"]  # X-ARES gives valid and test the same shards (DESED, FSDKaggle2018, VoxLingua33)
    return counts


def full_clips(card: TaskCard) -> int:
    """Clips of the task at F = 1 (what :func:`split_counts` writes with f=1, no overrides)."""
    return sum(split_counts(card, 1.0).values())


def shard_name(card: TaskCard, group: str) -> str:
    """A shard file pattern (``%06d``) that the card's pattern for ``group`` matches and no other group's does."""
    patterns = card.data.patterns()
    name = patterns[group].replace("*", "-%06d", 1).replace("*", "")
    for other, pattern in patterns.items():
        if other != group and pattern != patterns[group] and fnmatch.fnmatch(name % 0, pattern):
            raise ValueError(f"task {card.name}: shard name {name} of {group} also matches {other}'s {pattern}")
    return name


def _label(card: TaskCard, rng: np.random.Generator, seconds: float, index: int) -> object:
    """Sample JSON that passes the card's label checks (class names from the card, events inside the clip)."""
    spec = card.labels
    kind = spec.kind
    if kind == "index":
        return {spec.field: int(rng.integers(spec.num_classes))}
    if kind == "class_name":
        return {spec.field: spec.classes[int(rng.integers(spec.num_classes))]}
    if kind == "multi_label":
        picks = rng.choice(spec.num_classes, size=int(rng.integers(1, 4)), replace=False)
        return {spec.field: spec.separator.join(spec.classes[i] for i in picks)}
    if kind == "events":  # DESED-like: one to four events, each a class (sometimes two), inside the clip
        events = []
        for _ in range(int(rng.integers(1, 5))):
            onset = float(rng.uniform(0, max(seconds - 0.5, 0.01)))
            offset = min(seconds, onset + float(rng.uniform(0.3, min(5.0, seconds))))
            names = [spec.classes[i] for i in rng.choice(spec.num_classes, size=1 + (spec.separator is not None and rng.random() < 0.2), replace=False)]
            events.append({spec.onset_field: round(onset, 3), spec.offset_field: round(max(offset, onset + 0.01), 3),
                           spec.field: (spec.separator or "").join(names)})
        return sorted(events, key=lambda e: e[spec.onset_field])
    if kind == "captions":
        return {f"caption_{k + 1}": f"a {' and a '.join(rng.choice(SOUNDS, size=2, replace=False))} heard {k}" for k in range(5)}
    words = max(1, int(round(seconds * 2.7)))  # LibriSpeech reads at about 2.7 words a second
    return {spec.field: " ".join(rng.choice(WORDS, size=words)), "speaker": int(index % 251),
            "gender": "F" if index % 2 else "M"}


def _audio(rng: np.random.Generator, bank: np.ndarray, seconds: float) -> np.ndarray:
    """Cheap deterministic audio: a slice of a noise bank at a random gain plus a tone."""
    n = max(1, int(round(seconds * SR)))
    start = int(rng.integers(bank.size))
    noise = np.take(bank, np.arange(start, start + n), mode="wrap")
    tone = np.sin((2 * np.pi * float(rng.uniform(100, 4000)) / SR) * np.arange(n, dtype=np.float32))
    return (float(rng.uniform(0.05, 0.3)) * noise + float(rng.uniform(0.0, 0.3)) * tone).astype(np.float32)


def build_task(name: str, root: Path, f: float, train_clips: int | None = None, eval_clips: int | None = None,
               seed: int = 0, fmt: str = "flac") -> tuple[Path, dict]:
    """Write ``<root>/<name>/*.tar`` and ``<root>/cards/<name>.yaml`` once; return the card path and the manifest.

    The manifest (``<root>/<name>/manifest.json``) holds clips and seconds of audio per group; a folder whose
    manifest matches the request is reused as it is."""
    card = load_task(name)
    if name not in SIZES:
        raise ValueError(f"no paper-scale size for task '{name}'; known: {', '.join(SIZES)}")
    request = {"task": name, "f": f, "train_clips": train_clips, "eval_clips": eval_clips, "seed": seed, "format": fmt,
               "version": FORMAT_VERSION}
    folder, card_path, manifest_path = root / name, root / "cards" / f"{name}.yaml", root / name / "manifest.json"
    if manifest_path.exists() and card_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("request") == request:
            return card_path, manifest
    if folder.exists():
        shutil.rmtree(folder)
    size = SIZES[name]
    bank = rng_for(seed, name, "bank").standard_normal(SR * 37).astype(np.float32)
    groups: dict[str, dict] = {}
    for group, count in split_counts(card, f, train_clips, eval_clips).items():
        rng = rng_for(seed, name, group)
        mean = size.seconds if group == "train" or size.eval_seconds is None else size.eval_seconds
        durations = np.full(count, mean) if size.fixed else rng.uniform(0.5 * mean, 1.5 * mean, size=count)
        if card.data.crop_length is None:
            durations = np.minimum(durations, card.data.max_duration)
        durations = np.round(durations * SR) / SR

        def samples(durations: np.ndarray = durations, rng: np.random.Generator = rng, group: str = group):
            for i, seconds in enumerate(durations):
                yield f"{group}_{i:07d}", _audio(rng, bank, float(seconds)), SR, _label(card, rng, float(seconds), i)

        write_shards(samples(), folder / shard_name(card, group), fmt=fmt, max_count=1000)
        groups[group] = {"clips": int(count), "seconds": float(durations.sum())}
    raw = card.model_dump(mode="json", exclude={"path"})
    raw["data"].pop("zenodo_id", None)
    raw["description"] = f"Paper-scale synthetic stand-in (F={f:g}) for X-ARES task '{name}'. " + raw["description"]
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    manifest = {"request": request, "groups": groups, "clips": sum(g["clips"] for g in groups.values()),
                "hours": sum(g["seconds"] for g in groups.values()) / 3600, "full_clips": full_clips(card)}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return card_path, manifest


class RandomProjectionEncoder(torch.nn.Module):
    """A stand-in for a base model: frames the waveform at the hop and multiplies by a fixed seeded random matrix."""

    def __init__(self, width: int = 768, frame_rate: float = 50.0, seed: int = 0) -> None:
        super().__init__()
        self.sampling_rate = SR
        self.output_dim = int(width)
        self.hop_size_in_ms = 1000.0 / frame_rate
        self.hop = int(round(SR / frame_rate))
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", torch.randn(self.hop, self.output_dim, generator=generator) / self.hop ** 0.5)
        self.identity = {"id": f"paper-scale/random-projection-{width}x{frame_rate:g}", "revision": f"seed={seed}"}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, samples // hop frames, width)."""
        frames = max(1, audio.shape[1] // self.hop)
        if audio.shape[1] < frames * self.hop:
            audio = torch.nn.functional.pad(audio, (0, frames * self.hop - audio.shape[1]))
        return torch.tanh(audio[:, : frames * self.hop].reshape(audio.shape[0], frames, self.hop) @ self.projection)


def save_random_wav2vec2(folder: Path, width: int = 128, layers: int = 4, seed: int = 0) -> Path:
    """A randomly initialised wav2vec2 (layer-norm front end, 50 frames/s) saved once, for ``layer="all"`` runs.

    ``layers`` transformer blocks give ``layers + 1`` hidden states; the convolutions are kept narrow (16 channels)
    so encoding stays cheap on a CPU while the encoder's output is ``width``-d like the chosen base model's."""
    import transformers as tf

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    config = tf.Wav2Vec2Config(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2,
                               intermediate_size=2 * width, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                               num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True)
    tf.Wav2Vec2Model(config).save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    return folder

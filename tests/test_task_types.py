"""Every task type runs through xares_hf.evaluate from a card, on learnable synthetic tasks the tests write."""

import numpy as np
import pytest

from helpers import TONES, ConstantEncoder, save_tiny_qwen2, tone_at, write_task
from xares_hf import evaluate
from xares_hf.tasks import Event, LabelError, frame_targets

NAMES = list(TONES)
COUNTS = {"train": 24, "valid": 8, "test": 12}


def _run(model, card, root, tmp_path):
    return evaluate(model, tasks=[card], data_dir=root, cache_dir=tmp_path / "cache", output_dir=None)


@pytest.fixture(scope="module")
def frame_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("frame")

    def make(split):
        rng = np.random.default_rng(["train", "valid", "test"].index(split))
        out = []
        for i in range(COUNTS[split]):
            c = int(rng.integers(len(NAMES)))
            onset = float(rng.uniform(0.1, 1.0))
            offset = onset + float(rng.uniform(0.5, 0.9))
            out.append((f"{split}{i}", tone_at(TONES[NAMES[c]], 2.0, onset, offset), [{"onset": onset, "offset": offset, "label": NAMES[c]}]))
        return out

    card = {"task_type": "frame", "metric": "segmentf1_macro", "metric_args": {"segment_length_in_s": 0.2},
            "labels": {"kind": "events", "field": "label", "num_classes": 4, "classes": NAMES},
            "probe": {"epochs": 40, "learning_rate": 0.01, "batch_size": 4}}
    return root, write_task(root, "frames", card, make)


def test_frame_task_finds_events_at_their_times(frame_task, tmp_path):
    root, card = frame_task
    useful = _run("log-mel", card, root, tmp_path)["frames"]
    constant = _run(ConstantEncoder(), card, root, tmp_path)["frames"]
    assert useful.mlp >= 0.6 and useful.knn is None
    assert constant.mlp <= 0.35
    assert useful.mlp >= constant.mlp + 0.3


@pytest.mark.parametrize("hop_ms", [10, 20, 40])
def test_frame_targets_align_with_the_hop(hop_ms):
    target = frame_targets([Event(0.1, 0.3, (1,))], hop_ms, num_frames=20, num_classes=2)
    hop = hop_ms / 1000
    first, last = int(np.ceil(0.1 / hop - 1e-9)), int(np.ceil(0.3 / hop - 1e-9))
    on = np.flatnonzero(target[:, 1])
    assert on.tolist() == list(range(first, min(last, 20)))
    assert target[:, 0].sum() == 0
    assert frame_targets([Event(0.0, 5.0, (0,))], hop_ms, 7, 2)[:, 0].tolist() == [1.0] * 7  # trimmed to the encoder


@pytest.fixture(scope="module")
def multilabel_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")

    def make(split):
        rng = np.random.default_rng(10 + ["train", "valid", "test"].index(split))
        out = []
        for i in range(COUNTS[split] * 2):
            chosen = sorted(rng.choice(len(NAMES), size=int(rng.integers(1, 3)), replace=False).tolist())
            wave = sum(tone_at(TONES[NAMES[c]], 1.0, 0.0, 1.0) for c in chosen)
            out.append((f"{split}{i}", wave, {"tags": ";".join(NAMES[c] for c in chosen)}))
        return out

    card = {"task_type": "clip", "metric": "mAP",
            "labels": {"kind": "multi_label", "field": "tags", "separator": ";", "num_classes": 4, "classes": NAMES},
            "probe": {"epochs": 20, "learning_rate": 0.01, "batch_size": 8}}
    return root, write_task(root, "tags", card, make)


def test_multilabel_task_scores_map(multilabel_task, tmp_path):
    root, card = multilabel_task
    useful = _run("log-mel", card, root, tmp_path)["tags"]
    constant = _run(ConstantEncoder(), card, root, tmp_path)["tags"]
    assert useful.metric == "mAP" and useful.mlp >= 0.85
    assert constant.mlp <= 0.65
    assert useful.knn is None


@pytest.fixture(scope="module")
def retrieval_task(tmp_path_factory):
    """Each clip holds one or two of four tones; its captions name them, so every test clip is a distinct sound."""
    import itertools

    root = tmp_path_factory.mktemp("retrieval")
    words = {"beep": "a high beep", "hum": "a low hum", "whistle": "a shrill whistle", "chirp": "a middle chirp"}
    combos = [c for r in (1, 2) for c in itertools.combinations(NAMES, r)]
    copies = {"train": 3, "valid": 1, "test": 1}

    def make(split):
        rng = np.random.default_rng(20 + ["train", "valid", "test"].index(split))
        out = []
        for i, combo in enumerate(combos * copies[split]):
            wave = sum(tone_at(TONES[n], 1.0, float(rng.uniform(0, 0.2)), 1.0) for n in combo)
            names = [words[n] for n in combo]
            captions = {
                "caption_1": " and ".join(names),
                "caption_2": "we hear " + " with ".join(reversed(names)),
                "caption_3": "recording of " + " plus ".join(names) + " indoors",
            }
            out.append((f"{split}{i}", wave, captions))
        return out

    card = {"task_type": "contrastive", "metric": "recallatk_r1", "labels": {"kind": "captions"},
            "probe": {"epochs": 40, "learning_rate": 0.003, "batch_size": 16, "embed_dim": 32, "tokenizer": "not-a/tokenizer"}}
    return root, write_task(root, "captions", card, make)


def test_retrieval_task_scores_recall(retrieval_task, tmp_path):
    root, card = retrieval_task
    useful = _run("log-mel", card, root, tmp_path)["captions"]
    constant = _run(ConstantEncoder(), card, root, tmp_path)["captions"]
    assert useful.metric == "recallatk_r1" and useful.details["tokenizer"] == "trained-wordpiece"
    assert useful.mlp >= 0.5 and constant.mlp <= 0.05


LETTERS = {ch: 400.0 + 350.0 * i for i, ch in enumerate("abcdefg")}


BURST = (0.2 * np.random.default_rng(7).standard_normal(1600)).astype(np.float32)


def _spoken(words: list[str]) -> np.ndarray:
    """Each letter a 80 ms tone of its own pitch, 60 ms apart; words separated by a noise burst (the audible 'space')."""
    parts = []
    for j, word in enumerate(words):
        if j:
            parts += [BURST, np.zeros(960, np.float32)]
        parts += [tone_at(LETTERS[ch], 0.14, 0.0, 0.08) for ch in word]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def asr_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("asr")

    def make(split):
        rng = np.random.default_rng(30 + ["train", "valid", "test"].index(split))
        out = []
        for i in range(COUNTS[split] * 3):
            words = ["".join(rng.choice(list(LETTERS), size=int(rng.integers(2, 4)))) for _ in range(int(rng.integers(1, 3)))]
            wave = _spoken(words)
            out.append((f"{split}{i}", wave, {"trans": " ".join(words).upper()}))
        return out

    card = {"task_type": "asr", "metric": "WER_inv", "labels": {"kind": "transcript", "field": "trans"},
            "probe": {"epochs": 40, "learning_rate": 0.01, "batch_size": 4, "head": "ctc"}}
    return root, write_task(root, "speech", card, make)


def test_asr_task_with_the_ctc_head(asr_task, tmp_path):
    root, card = asr_task
    useful = _run("log-mel", card, root, tmp_path)["speech"]
    constant = _run(ConstantEncoder(), card, root, tmp_path)["speech"]
    assert useful.metric == "WER_inv" and useful.details["asr_head"] == "ctc"
    assert useful.mlp >= 0.5
    assert constant.mlp <= 0.1


def test_asr_task_with_the_llm_head_through_evaluate(asr_task, tmp_path):
    import yaml

    root, card = asr_task
    quick = yaml.safe_load(card.read_text())
    quick["probe"].update(epochs=2, max_new_tokens=8)  # a frozen random LM: this checks the wiring, not learning
    card = tmp_path / "speech.yaml"
    card.write_text(yaml.safe_dump(quick))
    decoder = save_tiny_qwen2(tmp_path / "tiny-qwen2", ["abc de fg", "gab cd"])
    result = evaluate("log-mel", tasks=[card], data_dir=root, cache_dir=tmp_path / "cache", output_dir=None,
                      asr_head="llm", asr_decoder=str(decoder))["speech"]
    assert result.details == {"asr_head": "llm", "decoder": str(decoder)}
    assert 0.0 <= result.mlp <= 1.0
    with pytest.raises(ValueError, match="(?s)cannot load the ASR decoder 'org/absent-lm'.*--asr-head ctc"):
        evaluate("log-mel", tasks=[card], data_dir=root, cache_dir=tmp_path / "cache", output_dir=None,
                 asr_head="llm", asr_decoder="org/absent-lm")


def test_bad_labels_of_new_task_types_are_clear(tmp_path):
    def make(split):
        return [(f"{split}0", tone_at(1000, 1.0, 0.0, 0.5), [{"onset": 2.5, "offset": 3.0, "label": "beep"}])]

    card = write_task(tmp_path, "late", {"task_type": "frame", "metric": "segmentf1_macro",
                                          "labels": {"kind": "events", "field": "label", "num_classes": 4, "classes": NAMES}}, make)
    with pytest.raises(LabelError, match=r"task 'late', split 'train', file .*, sample 'train0': event 0 starts at 2.5 s, outside the 1.00 s clip"):
        _run("log-mel", card, tmp_path, tmp_path)

    empty = write_task(tmp_path, "mute", {"task_type": "asr", "metric": "WER_inv", "labels": {"kind": "transcript", "field": "trans"}},
                       lambda split: [(f"{split}0", tone_at(500, 0.5, 0, 0.5), {"trans": "  "})])
    with pytest.raises(LabelError, match="sample 'train0': transcript in field 'trans' is empty"):
        _run("log-mel", empty, tmp_path, tmp_path)

    unknown = write_task(tmp_path, "odd", {"task_type": "frame", "metric": "segmentf1_macro",
                                           "labels": {"kind": "events", "field": "label", "num_classes": 4, "classes": NAMES}},
                         lambda split: [(f"{split}0", tone_at(500, 1.0, 0, 0.5), [{"onset": 0.1, "offset": 0.4, "label": "meow"}])])
    with pytest.raises(LabelError, match="label 'meow' in field 'label' is not one of the card's classes"):
        _run("log-mel", unknown, tmp_path, tmp_path)

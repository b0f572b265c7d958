"""The retrieval probe on a learnable synthetic audio-caption task (and a constant encoder that must fail it)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from xares_hf.probes.retrieval import RetrievalResult, train_retrieval_probe

CLASSES = {"dog": "barks", "rain": "falls", "bell": "rings", "car": "passes", "bird": "sings", "drum": "beats"}
ATTRIBUTES = ["loud", "quiet", "distant"]
TEMPLATES = [
    "a {attr} {cls} {verb} {filler}",
    "the {attr} sound of a {cls}",
    "{filler} a {cls} {verb}, {attr} and clear",
    "someone records a {attr} {cls} {filler}",
    "you can hear a {cls} that {verb}, it is {attr}",
]
FILLERS = ["outside", "nearby", "again", "in the morning", "twice", "for a while", "somewhere", "today"]
DIM, FAST = 16, dict(embed_dim=64, epochs=4, learning_rate=3e-3, batch_size=32, max_tokens=16)


def make_split(clips_per_combo: int, seed: int, constant: bool = False):
    """Each clip is one (class, attribute) pair: embedding = class + attribute prototype + noise; 3-5 captions
    naming both.

    Every (class, attribute) pair appears ``clips_per_combo`` times, so with 1 per pair each clip is identifiable from
    its captions. ``constant`` replaces every embedding by the same vector (an encoder that carries no information).
    """
    protos = np.random.default_rng(1234)  # the same prototypes in every split
    class_proto, attr_proto = protos.normal(size=(len(CLASSES), DIM)), protos.normal(size=(len(ATTRIBUTES), DIM))
    rng = np.random.default_rng(seed)
    x, captions = [], []
    for c, (cls, verb) in enumerate(CLASSES.items()):
        for a, attr in enumerate(ATTRIBUTES):
            for _ in range(clips_per_combo):
                x.append(class_proto[c] + attr_proto[a] + 0.3 * rng.normal(size=DIM))
                n = int(rng.integers(3, 6))
                chosen = rng.choice(len(TEMPLATES), size=n, replace=False)
                captions.append(
                    [
                        TEMPLATES[t].format(cls=cls, verb=verb, attr=attr, filler=FILLERS[rng.integers(len(FILLERS))])
                        for t in chosen
                    ]
                )
    x = np.asarray(x, dtype=np.float32)
    if constant:
        x = np.ones_like(x)
    return x, captions


def recall_at_1(audio: np.ndarray, text: np.ndarray, owner: np.ndarray, tol: float = 1e-6) -> float:
    """Mean of audio-to-text and text-to-audio Recall@1 on cosine similarity; ties count as misses (pessimistic)."""
    a = audio / np.linalg.norm(audio, axis=1, keepdims=True).clip(1e-12)
    t = text / np.linalg.norm(text, axis=1, keepdims=True).clip(1e-12)
    sim = a @ t.T  # (clips, captions)
    own = owner[None, :] == np.arange(len(a))[:, None]
    # a2t: some own caption scores strictly above every other clip's caption
    a2t = np.where(own, sim, -np.inf).max(1) > np.where(own, -np.inf, sim).max(1) + tol
    # t2a: the own clip scores strictly above every other clip
    own_t = own.T  # (captions, clips)
    t2a = np.where(own_t, sim.T, -np.inf).max(1) > np.where(own_t, -np.inf, sim.T).max(1) + tol
    return float((a2t.mean() + t2a.mean()) / 2)


def splits(constant: bool = False):
    return make_split(3, 0, constant), make_split(1, 1, constant), make_split(1, 2, constant)


@pytest.fixture(scope="module")
def learnt() -> RetrievalResult:
    train, valid, test = splits()
    return train_retrieval_probe(train, valid, test, recall_at_1, seed=0, **FAST)


def test_recall_scorer_is_pessimistic_on_ties():
    owner = np.array([0, 0, 1])
    same = np.ones((2, 4), dtype=np.float32)
    assert recall_at_1(same, np.ones((3, 4), dtype=np.float32), owner) == 0.0
    eye = np.eye(4, dtype=np.float32)
    assert recall_at_1(eye[:2], eye[[0, 0, 1]], owner) == 1.0


def test_learnable_task_beats_constant_encoder(learnt):
    train, valid, test = splits(constant=True)
    constant = train_retrieval_probe(train, valid, test, recall_at_1, seed=0, **FAST)
    learnt_r1 = recall_at_1(learnt.audio_embeddings, learnt.text_embeddings, learnt.caption_owner)
    constant_r1 = recall_at_1(constant.audio_embeddings, constant.text_embeddings, constant.caption_owner)
    assert learnt_r1 >= 0.5, learnt_r1
    assert constant_r1 <= 0.2, constant_r1
    assert max(learnt.valid_scores) >= 0.5


def test_result_shapes_and_selection(learnt):
    _, _, (x_test, c_test) = splits()
    n_captions = sum(len(c) for c in c_test)
    assert learnt.audio_embeddings.shape == (len(x_test), FAST["embed_dim"])
    assert learnt.text_embeddings.shape == (n_captions, FAST["embed_dim"])
    assert learnt.audio_embeddings.dtype == learnt.text_embeddings.dtype == np.float32
    assert learnt.caption_owner.dtype == np.int64 and learnt.caption_owner.shape == (n_captions,)
    np.testing.assert_array_equal(learnt.caption_owner, np.repeat(np.arange(len(c_test)), [len(c) for c in c_test]))
    np.testing.assert_allclose(np.linalg.norm(learnt.audio_embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(learnt.text_embeddings, axis=1), 1.0, rtol=1e-5)
    assert len(learnt.valid_scores) == FAST["epochs"]
    assert learnt.best_epoch == int(np.argmax(learnt.valid_scores)) + 1


def test_same_seed_same_embeddings(learnt):
    train, valid, test = splits()
    again = train_retrieval_probe(train, valid, test, recall_at_1, seed=0, **FAST)
    np.testing.assert_array_equal(again.audio_embeddings, learnt.audio_embeddings)
    np.testing.assert_array_equal(again.text_embeddings, learnt.text_embeddings)
    assert again.valid_scores == learnt.valid_scores and again.best_epoch == learnt.best_epoch


def test_offline_falls_back_to_trained_wordpiece(learnt, caplog):
    # The default tokenizer (google-bert/bert-base-uncased) is not in the offline test cache.
    assert learnt.tokenizer == "trained-wordpiece"
    train, valid, test = splits()
    with caplog.at_level(logging.WARNING, logger="xares_hf"):
        result = train_retrieval_probe(
            train, valid, test, recall_at_1, tokenizer="no-such-org/no-such-tokenizer", **{**FAST, "epochs": 1}
        )
    assert result.tokenizer == "trained-wordpiece"
    messages = [r.getMessage() for r in caplog.records]
    assert any("no-such-org/no-such-tokenizer" in m and "unavailable" in m for m in messages), messages


def test_none_tokenizer_trains_wordpiece_without_warning(caplog):
    train, valid, test = splits()
    with caplog.at_level(logging.WARNING, logger="xares_hf"):
        result = train_retrieval_probe(train, valid, test, recall_at_1, tokenizer=None, **{**FAST, "epochs": 1})
    assert result.tokenizer == "trained-wordpiece"
    assert not caplog.records


def test_local_pretrained_tokenizer_is_used(tmp_path):
    from transformers import BertTokenizer

    # A tiny BERT tokenizer saved locally: the AutoTokenizer path, offline.
    words = {w.strip(",") for t in TEMPLATES + FILLERS for w in t.split() if "{" not in w}
    words |= set(CLASSES) | set(CLASSES.values()) | set(ATTRIBUTES)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ","]
    folder = tmp_path / "tok"
    BertTokenizer(vocab={w: i for i, w in enumerate(specials + sorted(words))}).save_pretrained(folder)
    train, valid, test = splits()
    result = train_retrieval_probe(train, valid, test, recall_at_1, tokenizer=str(folder), seed=0, **FAST)
    assert result.tokenizer == str(folder)
    assert recall_at_1(result.audio_embeddings, result.text_embeddings, result.caption_owner) >= 0.5


@pytest.mark.parametrize(
    "where, edit, message",
    [
        ("valid", lambda x, c: (x, [c[0], [], *c[2:]]), r"valid split, clip 1 has no captions"),
        ("train", lambda x, c: (x, [c[0], c[1], [c[2][0], "  "], *c[3:]]), r"train split, clip 2, caption 1 is empty"),
        ("test", lambda x, c: (x, [c[0], [""], *c[2:]]), r"test split, clip 1, caption 0 is empty"),
        ("train", lambda x, c: (x[:-1], c), r"train split: 53 clip embeddings but 54 caption lists"),
        ("test", lambda x, c: (x, c[:-1]), r"test split: 18 clip embeddings but 17 caption lists"),
    ],
)
def test_invalid_inputs_raise(where, edit, message):
    data = dict(zip(("train", "valid", "test"), splits()))
    data[where] = edit(*data[where])
    with pytest.raises(ValueError, match=message):
        train_retrieval_probe(data["train"], data["valid"], data["test"], recall_at_1, tokenizer=None, **FAST)

import math

import numpy as np
import pytest

from xares_hf.scoring import metric_path


@pytest.fixture(scope="module")
def recall():
    import evaluate

    return evaluate.load(metric_path("recall_at_k"))


def _brute_force(text, audio, refs, ks):
    """Independent reference: per-pair cosine in plain Python, pessimistic ranks by counting loops."""

    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v] if norm > 0 else [0.0 for _ in v]

    text, audio, refs = [unit(t) for t in text], [unit(a) for a in audio], [int(r) for r in refs]
    sim = [[sum(x * y for x, y in zip(t, a)) for a in audio] for t in text]
    t2a = []
    for j, own in enumerate(refs):  # caption j: 1 + other clips at least as similar as its own clip
        t2a.append(1 + sum(1 for i in range(len(audio)) if i != own and sim[j][i] >= sim[j][own]))
    a2t = []
    for i in range(len(audio)):  # clip i: best rank over its captions, each counting only other clips' captions
        mine = [j for j in range(len(text)) if refs[j] == i]
        others = [j for j in range(len(text)) if refs[j] != i]
        a2t.append(min(1 + sum(1 for o in others if sim[o][i] >= sim[r][i]) for r in mine))
    out = {}
    for k in ks:
        a = sum(r <= k for r in a2t) / len(a2t)
        t = sum(r <= k for r in t2a) / len(t2a)
        out.update({f"a2t_R@{k}": a, f"t2a_R@{k}": t, f"R@{k}": (a + t) / 2})
    out["t2a_mAP@10"] = sum(1.0 / r if r <= 10 else 0.0 for r in t2a) / len(t2a)
    return out


def _random_case(rng, n_audio=20, caps=5, dim=8, noise=1.0):
    audio = rng.normal(size=(n_audio, dim))
    refs = rng.permutation(np.repeat(np.arange(n_audio), caps))
    text = audio[refs] + noise * rng.normal(size=(len(refs), dim))
    return text, audio, refs


def test_matches_brute_force_on_random_inputs(recall):
    rng = np.random.default_rng(0)
    for seed, (n_audio, caps, dim, noise) in enumerate([(20, 5, 8, 1.0), (15, 3, 4, 2.0), (12, 1, 16, 0.5)]):
        text, audio, refs = _random_case(rng, n_audio, caps, dim, noise)
        ks = [1, 5, 10] if seed else [1, 2, 3, 7, 50]
        result = recall.compute(predictions=text, references=refs, audio_embeddings=audio, k=ks)
        expected = _brute_force(text.tolist(), audio.tolist(), refs, ks)
        assert list(result) == list(expected)
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=1e-9), key
            assert isinstance(result[key], float) and 0.0 <= result[key] <= 1.0


def test_matches_xares_argsort_ranking_without_ties(recall):
    # X-ARES' clap_metrics: captions in blocks of num_caps per clip, ranks from argsort (no ties in random data)
    rng = np.random.default_rng(1)
    n_audio, caps = 30, 5
    audio = rng.normal(size=(n_audio, 6))
    refs = np.repeat(np.arange(n_audio), caps)
    text = audio[refs] + 1.5 * rng.normal(size=(len(refs), 6))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    sim = unit(audio) @ unit(text).T
    a2t_pos = np.array([np.argsort(-sim[i]).tolist().index(j) for i in range(n_audio) for j in range(i * caps, (i + 1) * caps)])
    a2t_pos = a2t_pos.reshape(n_audio, caps).min(axis=1)
    t2a_pos = np.array([np.argsort(-sim[:, j]).tolist().index(refs[j]) for j in range(len(refs))])
    result = recall.compute(predictions=text, references=refs, audio_embeddings=audio)
    for k in (1, 5, 10):
        xares_r = (np.mean(a2t_pos < k) + np.mean(t2a_pos < k)) / 2
        assert result[f"R@{k}"] == pytest.approx(xares_r, abs=1e-12)
    assert result["t2a_mAP@10"] == pytest.approx(np.mean(np.where(t2a_pos < 10, 1.0 / (t2a_pos + 1), 0.0)), abs=1e-12)


def test_default_keys(recall):
    text, audio, refs = _random_case(np.random.default_rng(2), n_audio=12)
    result = recall.compute(predictions=text, references=refs, audio_embeddings=audio)
    assert list(result) == [f"{p}R@{k}" for k in (1, 5, 10) for p in ("a2t_", "t2a_", "")] + ["t2a_mAP@10"]


def test_constant_embeddings_score_zero_not_one(recall):
    # every similarity ties: t2a rank = n_audio, a2t rank = 1 + captions of the other clips
    n_audio, caps = 4, 5
    refs = np.repeat(np.arange(n_audio), caps)
    result = recall.compute(
        predictions=np.ones((n_audio * caps, 3)), references=refs, audio_embeddings=np.ones((n_audio, 3)), k=[1, 3, 4, 16]
    )
    assert result["a2t_R@1"] == result["t2a_R@1"] == result["R@1"] == 0.0
    assert result["t2a_R@3"] == 0.0 and result["t2a_R@4"] == 1.0  # all 4 clips tie: rank 4
    assert result["a2t_R@4"] == 0.0 and result["a2t_R@16"] == 1.0  # 15 other captions tie: rank 16
    assert result["t2a_mAP@10"] == pytest.approx(0.25)


def test_zero_vectors_stay_zero_and_tie(recall):
    refs = [0, 1, 2]
    result = recall.compute(predictions=np.eye(3), references=refs, audio_embeddings=np.zeros((3, 3)), k=[1, 3])
    assert result["R@1"] == 0.0 and result["t2a_R@3"] == 1.0 and result["a2t_R@3"] == 1.0


def test_perfect_embeddings_score_one(recall):
    rng = np.random.default_rng(3)
    audio = rng.normal(size=(25, 32))
    refs = np.repeat(np.arange(25), 5)
    text = audio[refs] * rng.uniform(0.5, 3.0, size=(len(refs), 1))  # scale does not matter for cosine
    result = recall.compute(predictions=text, references=refs, audio_embeddings=audio)
    assert all(v == pytest.approx(1.0) for v in result.values())


def test_hand_computed_partial_ties(recall):
    audio = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]  # clips 0 and 1 identical
    text = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    refs = [0, 2, 1]
    result = recall.compute(predictions=text, references=refs, audio_embeddings=audio, k=[1, 2])
    # t2a ranks: caption 0 ties clip 1 -> 2; caption 1 -> 1; caption 2 ties all three clips -> 3
    assert result["t2a_R@1"] == pytest.approx(1 / 3) and result["t2a_R@2"] == pytest.approx(2 / 3)
    assert result["t2a_mAP@10"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    # a2t: clip 0 -> caption 0 (sim 1, nothing else >= 1) rank 1; clip 1 -> caption 2 (0.707) behind caption 0: 2;
    # clip 2 -> caption 1 rank 1
    assert result["a2t_R@1"] == pytest.approx(2 / 3) and result["a2t_R@2"] == 1.0


def test_a2t_counts_only_other_clips_captions(recall):
    # clip 0 has two captions tied with each other; its rank must stay 1
    result = recall.compute(
        predictions=[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], references=[0, 0, 1], audio_embeddings=np.eye(2), k=1
    )
    assert result["a2t_R@1"] == 1.0 and result["t2a_R@1"] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(predictions=[[1.0, 0.0]], references=[0]), "audio_embeddings is required"),
        (dict(predictions=[[1.0, 0.0]], references=[1], audio_embeddings=[[1.0, 0.0]]), "references must be audio clip indices"),
        (dict(predictions=[[1.0, 0.0]], references=[-1], audio_embeddings=[[1.0, 0.0]]), "references must be audio clip indices"),
        (dict(predictions=[[1.0, 0.0]], references=[0], audio_embeddings=np.eye(2)), "every audio clip needs at least one caption"),
        (dict(predictions=[[1.0, 0.0]], references=[0], audio_embeddings=[[1.0, 0.0, 0.0]]), "embedding dims differ"),
        (dict(predictions=[[1.0, float("nan")]], references=[0], audio_embeddings=[[1.0, 0.0]]), "non-finite"),
        (dict(predictions=[[1.0, 0.0]], references=[0], audio_embeddings=[[np.inf, 0.0]]), "non-finite"),
        (dict(predictions=[[1.0, 0.0], [1.0]], references=[0, 0], audio_embeddings=[[1.0, 0.0]]), "rows of equal length"),
        (dict(predictions=[[1.0, 0.0]], references=[0], audio_embeddings=[1.0, 0.0]), "non-empty 2-D array"),
        (dict(predictions=[], references=[], audio_embeddings=[[1.0, 0.0]]), "at least one caption"),
        (dict(predictions=[[1.0, 0.0]], references=[0, 0], audio_embeddings=[[1.0, 0.0]]), "Mismatch in the number"),
        (dict(predictions=[[1.0, 0.0]], references=[0], audio_embeddings=[[1.0, 0.0]], k=0), "k must be a positive int"),
        (dict(predictions=[[1.0, 0.0]], references=[0], audio_embeddings=[[1.0, 0.0]], k=[]), "k must be a positive int"),
    ],
)
def test_bad_input_raises(recall, kwargs, match):
    with pytest.raises(ValueError, match=match):
        recall.compute(**kwargs)

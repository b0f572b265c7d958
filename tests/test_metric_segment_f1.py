import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from xares_hf.scoring import metric_path


@pytest.fixture(scope="module")
def segment_f1():
    import evaluate

    return evaluate.load(metric_path("segment_f1"))


def _reference(preds, refs, hop_ms, seg_s, average, threshold=0.5):
    """Independent reference: frame loops for pooling, then scikit-learn's multi-label f1_score."""
    window = math.ceil(round(seg_s * 1000 / hop_ms, 6))
    y_true, y_pred = [], []
    for pred, ref in zip(preds, refs):
        n_frames, n_classes = len(pred), len(pred[0])
        bounds = [(s, s + window) for s in range(0, n_frames - window + 1, window)] or [(0, n_frames)]
        for start, end in bounds:
            y_pred.append([int(any(pred[f][c] > threshold for f in range(start, end))) for c in range(n_classes)])
            y_true.append([int(any(ref[f][c] == 1 for f in range(start, end))) for c in range(n_classes)])
    return f1_score(np.array(y_true), np.array(y_pred), average=average, zero_division=0), len(y_true)


def _random_clips(rng, n_clips, n_classes, min_frames=30, max_frames=260):
    preds, refs = [], []
    for _ in range(n_clips):
        n = int(rng.integers(min_frames, max_frames))
        ref = np.zeros((n, n_classes), dtype=np.int64)
        for c in range(n_classes):  # a few events per class
            for _ in range(int(rng.integers(0, 3))):
                start = int(rng.integers(0, n))
                ref[start : start + int(rng.integers(1, 40)), c] = 1
        noise = rng.uniform(-0.6, 0.6, size=ref.shape)
        preds.append(np.clip(0.25 + 0.5 * ref + noise, 0.0, 1.0))
        refs.append(ref)
    return preds, refs


@pytest.mark.parametrize("hop_ms", [10, 20, 40])
@pytest.mark.parametrize("seg_s, average", [(1.0, "macro"), (0.1, "micro"), (1.0, "micro"), (0.1, "macro")])
def test_matches_loop_reference_on_random_inputs(segment_f1, hop_ms, seg_s, average):
    rng = np.random.default_rng(hop_ms * 10 + int(seg_s * 10))
    preds, refs = _random_clips(rng, n_clips=6, n_classes=5)
    result = segment_f1.compute(
        predictions=preds, references=refs, hop_size_in_ms=hop_ms, segment_length_in_s=seg_s, average=average
    )
    expected, n_segments = _reference(preds, refs, hop_ms, seg_s, average)
    assert 0.0 < expected < 1.0  # a non-trivial case
    assert result["segment_f1"] == pytest.approx(expected, abs=1e-9)
    assert result["num_segments"] == n_segments
    assert isinstance(result["segment_f1"], float) and isinstance(result["num_segments"], int)


@pytest.mark.parametrize(
    "hop_ms, seg_s, n_segments",
    [(10, 1.0, 1), (20, 1.0, 2), (40, 1.0, 4), (40, 0.1, 33), (10, 0.1, 10), (100, 1.1, 9)],
)
def test_window_size_from_hop(segment_f1, hop_ms, seg_s, n_segments):
    # 100 frames: 1 s windows of 100, 50, 25 frames; 0.1 s at 40 ms is ceil(2.5) = 3 frames (33 segments, 1 dropped);
    # 1.1 s at 100 ms is 11 frames, not 12 from float error (9 segments)
    ref = np.zeros((100, 2), dtype=int)
    result = segment_f1.compute(
        predictions=[ref.astype(float)], references=[ref], hop_size_in_ms=hop_ms, segment_length_in_s=seg_s
    )
    assert result["num_segments"] == n_segments


def test_clip_shorter_than_one_segment_is_one_segment(segment_f1):
    # 1 s at 250 ms = 4 frames; a 3-frame clip still counts as one segment
    short_ref, short_pred = [[0, 0], [1, 0], [0, 0]], [[0.0, 0.0], [0.0, 0.0], [0.9, 0.0]]
    long_ref = np.zeros((8, 2), dtype=int)
    long_ref[0, 1] = 1
    long_pred = long_ref.astype(float)
    result = segment_f1.compute(
        predictions=[short_pred, long_pred], references=[short_ref, long_ref], hop_size_in_ms=250, average="micro"
    )
    assert result == {"segment_f1": 1.0, "num_segments": 3}
    missed = segment_f1.compute(predictions=[[[0.1], [0.2]]], references=[[[0], [1]]], hop_size_in_ms=250)
    assert missed == {"segment_f1": 0.0, "num_segments": 1}


def test_trailing_partial_window_is_dropped(segment_f1):
    ref = np.zeros((10, 1), dtype=int)
    ref[1, 0] = 1
    ref[9, 0] = 1  # frames 8-9 are a partial window: ignored
    pred = np.zeros((10, 1))
    pred[2, 0] = 1.0
    pred[8, 0] = 1.0  # a false alarm there is ignored too
    result = segment_f1.compute(predictions=[pred], references=[ref], hop_size_in_ms=250)
    assert result == {"segment_f1": 1.0, "num_segments": 2}


def test_threshold_is_strict(segment_f1):
    ref = [[[1], [0], [0], [0]]]
    at = segment_f1.compute(predictions=[[[0.5], [0.0], [0.0], [0.0]]], references=ref, hop_size_in_ms=250)
    above = segment_f1.compute(predictions=[[[0.5000001], [0.0], [0.0], [0.0]]], references=ref, hop_size_in_ms=250)
    logits = segment_f1.compute(predictions=[[[0.3], [-2.0], [-1.0], [0.0]]], references=ref, hop_size_in_ms=250, threshold=0)
    assert at["segment_f1"] == 0.0 and above["segment_f1"] == 1.0 and logits["segment_f1"] == 1.0


def test_macro_and_micro_hand_computed(segment_f1):
    # one frame per segment (hop 1000 ms): class 0 TP 2 FP 1 FN 0 -> 0.8; class 1 TP 0 FP 0 FN 1 -> 0
    ref = [[1, 0], [1, 1], [0, 0]]
    pred = [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    macro = segment_f1.compute(predictions=[pred], references=[ref], hop_size_in_ms=1000)
    micro = segment_f1.compute(predictions=[pred], references=[ref], hop_size_in_ms=1000, average="micro")
    assert macro["segment_f1"] == pytest.approx(0.4)
    assert micro["segment_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # TP 2 FP 1 FN 1


def test_single_class_is_positive_class_f1(segment_f1):
    # sklearn would treat one column as binary and macro-average labels 0 and 1 (3/7); the event F1 is 6/7
    ref, pred = [[1], [1], [1], [0]], [[1.0], [1.0], [1.0], [1.0]]
    for average in ("macro", "micro"):
        result = segment_f1.compute(predictions=[pred], references=[ref], hop_size_in_ms=1000, average=average)
        assert result["segment_f1"] == pytest.approx(6 / 7)


def test_perfect_and_three_d_array_input(segment_f1):
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 2, size=(3, 60, 4))
    result = segment_f1.compute(predictions=ref.astype(float), references=ref, hop_size_in_ms=100)
    assert result == {"segment_f1": 1.0, "num_segments": 18}


_P, _R = [[[0.9, 0.1], [0.2, 0.8]]], [[[1, 0], [0, 1]]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(predictions=_P, references=_R), "hop_size_in_ms is required"),
        (dict(predictions=_P, references=_R, hop_size_in_ms=0), "hop_size_in_ms must be a positive finite number"),
        (dict(predictions=_P, references=_R, hop_size_in_ms=-10), "hop_size_in_ms must be a positive finite number"),
        (dict(predictions=_P, references=_R, hop_size_in_ms=float("nan")), "hop_size_in_ms must be a positive"),
        (dict(predictions=_P, references=_R, hop_size_in_ms=10, segment_length_in_s=0), "segment_length_in_s must be"),
        (dict(predictions=_P, references=_R, hop_size_in_ms=10, average="weighted"), "average must be 'macro' or 'micro'"),
        (dict(predictions=_P, references=_R, hop_size_in_ms=10, threshold=float("inf")), "threshold must be a finite"),
        (dict(predictions=_P, references=[[[1, 0]]], hop_size_in_ms=10), "predictions have 2 frames but references have 1"),
        (dict(predictions=_P, references=[[[1], [0]]], hop_size_in_ms=10), "class count differs"),
        (dict(predictions=_P + [[[0.5, 0.5, 0.5]]], references=_R + [[[1, 0, 0]]], hop_size_in_ms=10), "class count differs"),
        (dict(predictions=_P, references=[[[2, 0], [0, 1]]], hop_size_in_ms=10), "references must be 0/1"),
        (dict(predictions=[[[float("nan"), 0.1], [0.2, 0.8]]], references=_R, hop_size_in_ms=10), "non-finite"),
        (dict(predictions=[[[0.9, 0.1], [0.2]]], references=_R, hop_size_in_ms=10), "rows of equal length"),
        (dict(predictions=[[]], references=[[]], hop_size_in_ms=10), "non-empty frames x classes"),
        (dict(predictions=[], references=[], hop_size_in_ms=10), "at least one clip"),
        (dict(predictions=_P, references=_R + _R, hop_size_in_ms=10), "Mismatch in the number"),
    ],
)
def test_bad_input_raises(segment_f1, kwargs, match):
    with pytest.raises(ValueError, match=match):
        segment_f1.compute(**kwargs)

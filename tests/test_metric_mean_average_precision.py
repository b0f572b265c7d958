import warnings

import evaluate
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from xares_hf.scoring import metric_path


@pytest.fixture(scope="module")
def clip_map():
    return evaluate.load(metric_path("mean_average_precision"))


@pytest.fixture(scope="module")
def frame_map():
    return evaluate.load(metric_path("mean_average_precision"), "frame")


def numpy_ap(targets, scores):
    """Uninterpolated AP of one class: sum over distinct thresholds of (R_k - R_{k-1}) * P_k; 0 without positives."""
    positives = targets.sum()
    if positives == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    targets, scores = targets[order], scores[order]
    true_pos = np.cumsum(targets)
    last_of_threshold = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # tied scores form one threshold
    tp = true_pos[last_of_threshold]
    precision = tp / (last_of_threshold + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def numpy_map(targets, scores, ignore_empty_classes=False):
    classes = [c for c in range(targets.shape[1]) if not ignore_empty_classes or targets[:, c].any()]
    return float(np.mean([numpy_ap(targets[:, c], scores[:, c]) for c in classes]))


def _random_case(rng, n=60, classes=8, ties=False):
    scores = rng.normal(size=(n, classes))
    if ties:
        scores = np.round(scores, 1)
    targets = (rng.random((n, classes)) < 0.3).astype(np.int64)
    targets[rng.integers(0, n), :] = 1  # every class has a positive
    return scores, targets


@pytest.mark.parametrize("ties", [False, True])
def test_clip_map_matches_sklearn_and_numpy(clip_map, ties):
    rng = np.random.default_rng(1)
    for _ in range(5):
        scores, targets = _random_case(rng, ties=ties)
        result = clip_map.compute(predictions=scores.tolist(), references=targets.tolist())
        assert set(result) == {"mean_average_precision", "classes_without_positives"}
        assert result["classes_without_positives"] == 0
        assert result["mean_average_precision"] == pytest.approx(
            average_precision_score(targets, scores, average="macro"), abs=1e-9
        )
        assert result["mean_average_precision"] == pytest.approx(numpy_map(targets, scores), abs=1e-9)


def test_numpy_arrays_are_accepted(clip_map):
    scores, targets = _random_case(np.random.default_rng(2))
    result = clip_map.compute(predictions=scores, references=targets)
    assert result["mean_average_precision"] == pytest.approx(numpy_map(targets, scores), abs=1e-9)


def test_hand_computed_value(clip_map):
    # class 0 ranks its two positives first: AP 1; class 1 ranks positive, negative, positive: AP (1 + 2/3) / 2
    result = clip_map.compute(references=[[1, 0], [0, 1], [1, 1]], predictions=[[0.9, 0.2], [0.3, 0.8], [0.4, 0.1]])
    assert result["mean_average_precision"] == pytest.approx((1 + 5 / 6) / 2, abs=1e-12)


def test_single_class(clip_map):
    result = clip_map.compute(references=[[1], [0], [1]], predictions=[[0.2], [0.9], [0.5]])
    assert result["mean_average_precision"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)


def test_class_without_positives(clip_map):
    rng = np.random.default_rng(3)
    scores, targets = _random_case(rng, classes=5)
    targets[:, [1, 3]] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's "No positive class found" warning must be suppressed
        default = clip_map.compute(predictions=scores, references=targets)
        ignored = clip_map.compute(predictions=scores, references=targets, ignore_empty_classes=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sklearn_value = average_precision_score(targets, scores, average="macro")
    # default: the empty classes count as AP 0, exactly as sklearn (and X-ARES)
    assert default["classes_without_positives"] == 2
    assert default["mean_average_precision"] == pytest.approx(sklearn_value, abs=1e-9)
    assert default["mean_average_precision"] == pytest.approx(numpy_map(targets, scores), abs=1e-9)
    # ignore_empty_classes: mean over the 3 classes with positives only
    kept = [0, 2, 4]
    assert ignored["classes_without_positives"] == 2
    assert ignored["mean_average_precision"] == pytest.approx(
        average_precision_score(targets[:, kept], scores[:, kept], average="macro"), abs=1e-9
    )
    assert ignored["mean_average_precision"] == pytest.approx(numpy_map(targets, scores, True), abs=1e-9)
    assert ignored["mean_average_precision"] == pytest.approx(default["mean_average_precision"] * 5 / 3, abs=1e-9)


def test_frame_config_equals_flattened_clip_computation(clip_map, frame_map):
    rng = np.random.default_rng(4)
    frames = rng.integers(1, 9, size=12)  # clips of different lengths
    scores = [rng.normal(size=(t, 6)) for t in frames]
    targets = [(rng.random((t, 6)) < 0.3).astype(np.int64) for t in frames]
    targets[0][0, :] = 1
    result = frame_map.compute(predictions=[s.tolist() for s in scores], references=[t.tolist() for t in targets])
    flat_scores, flat_targets = np.concatenate(scores), np.concatenate(targets)
    flat = clip_map.compute(predictions=flat_scores, references=flat_targets)
    assert result == {
        "mean_average_precision": pytest.approx(flat["mean_average_precision"], abs=1e-12),
        "classes_without_positives": flat["classes_without_positives"],
    }
    assert result["mean_average_precision"] == pytest.approx(
        average_precision_score(flat_targets, flat_scores, average="macro"), abs=1e-9
    )
    assert result["mean_average_precision"] == pytest.approx(numpy_map(flat_targets, flat_scores), abs=1e-9)


def test_add_batch_accumulates_like_one_compute(clip_map):
    scores, targets = _random_case(np.random.default_rng(5))
    clip_map.add_batch(predictions=scores[:25], references=targets[:25])
    clip_map.add_batch(predictions=scores[25:], references=targets[25:])
    assert clip_map.compute() == clip_map.compute(predictions=scores, references=targets)


@pytest.mark.parametrize(
    "predictions, references, message",
    [
        ([[0.1, 0.2]], [[1, 0], [0, 1]], "Mismatch in the number of predictions"),
        ([], [], "at least one prediction/reference pair"),
        ([[0.1, 0.2], [0.3]], [[1, 0], [0, 1]], "same number of classes"),
        ([[0.1, 0.2], [0.3, 0.1]], [[1, 0, 0], [0, 1, 0]], "2 classes but references have 3"),
        ([[0.1, float("nan")], [0.3, 0.1]], [[1, 0], [0, 1]], "non-finite scores"),
        ([[0.1, float("inf")], [0.3, 0.1]], [[1, 0], [0, 1]], "non-finite scores"),
        ([[0.1, 0.2], [0.3, 0.1]], [[2, 0], [0, 1]], "only 0 and 1"),
        ([[0.1, 0.2], [0.3, 0.1]], [[0.5, 0], [0, 1]], "only 0 and 1"),
        ([[], []], [[], []], "zero classes"),
    ],
)
def test_clip_bad_input_raises(clip_map, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        clip_map.compute(predictions=predictions, references=references)


def test_ignore_empty_classes_without_any_positive_raises(clip_map):
    with pytest.raises(ValueError, match="no class has a positive reference"):
        clip_map.compute(predictions=[[0.1, 0.2], [0.3, 0.1]], references=[[0, 0], [0, 0]], ignore_empty_classes=True)


@pytest.mark.parametrize(
    "predictions, references, message",
    [
        ([[[0.1, 0.2]], [[0.3, 0.1], [0.2, 0.2]]], [[[1, 0]], [[0, 1]]], "clip 1 has 2 prediction frames but 1"),
        ([[], []], [[], []], "at least one prediction/reference pair"),
        ([[[0.1, 0.2]], [[0.3]]], [[[1, 0]], [[1]]], "same number of classes"),
        ([[[0.1, float("nan")]]], [[[1, 0]]], "non-finite scores"),
        ([[[0.1, 0.2]], [[0.3, 0.1]]], [[[1, 0]], [[0, 0.2]]], "only 0 and 1"),
        ([[0.1, 0.2]], [[1, 0]], "don't match the expected format"),  # clip-shaped input to the frame config
    ],
)
def test_frame_bad_input_raises(frame_map, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        frame_map.compute(predictions=predictions, references=references)


def test_unknown_config_raises():
    with pytest.raises(ValueError, match="unknown config 'segment'"):
        evaluate.load(metric_path("mean_average_precision"), "segment")

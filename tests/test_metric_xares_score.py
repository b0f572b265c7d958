import evaluate
import numpy as np
import pytest

from xares_hf.metric_modules import metric_path


@pytest.fixture(scope="module")
def xares_score():
    return evaluate.load(metric_path("xares_score"))


def test_matches_a_direct_computation(xares_score):
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = int(rng.integers(1, 12))
        scores, weights = rng.uniform(-0.5, 1.5, n), rng.uniform(0, 100, n)
        worst, best = rng.uniform(-1, 0, n), rng.uniform(1, 2, n)
        out = xares_score.compute(scores=scores, weights=weights, worst=worst, best=best)
        norm = np.clip((scores - worst) / (best - worst), 0, 1)
        assert out["normalised_scores"] == pytest.approx(norm.tolist(), abs=1e-9)
        assert out["score"] == pytest.approx(float((norm * weights).sum() / weights.sum()), abs=1e-9)


def test_zero_weight_tasks_drop_out_and_scores_clip(xares_score):
    out = xares_score.compute(scores=[1.2, -0.1, 0.5], weights=[1, 1, 0])
    assert out["normalised_scores"] == [1.0, 0.0, 0.5] and out["score"] == 0.5 and out["total_weight"] == 2.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scores=[0.5, float("nan")], weights=[1, 1]), "non-finite task score"),
        (dict(scores=[0.5], weights=[-1]), "non-negative"),
        (dict(scores=[0.5], weights=[0]), "weights sum to 0"),
        (dict(scores=[0.5, 0.2], weights=[1, 1], worst=[0, 0, 0]), "'worst' must be one number or one per task"),
        (dict(scores=[0.5], weights=[1], worst=1.0, best=1.0), "must differ"),
    ],
)
def test_bad_input_is_a_clear_error(xares_score, kwargs, message):
    with pytest.raises(ValueError, match=message):
        xares_score.compute(**kwargs)

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from xares_hf import scoring


def test_accuracy_module_matches_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        refs, preds = rng.integers(0, 7, 200), rng.integers(0, 7, 200)
        assert scoring.compute("accuracy", predictions=preds, references=refs) == pytest.approx(accuracy_score(refs, preds), abs=1e-12)


def test_scores_are_normalised_and_weighted():
    assert scoring.normalise("accuracy", 0.5) == 0.5
    assert scoring.aggregate([1.0, 0.0], [3, 1], ["accuracy", "accuracy"]) == ([1.0, 0.0], 0.75)
    assert scoring.aggregate([0.4], [0], ["accuracy"]) == ([0.4], None)
    assert scoring.aggregate([], [], []) == ([], None)
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        scoring.compute("bleu", [0], [0])

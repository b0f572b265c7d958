"""The cosine k-NN probe is scikit-learn's brute-force cosine KNeighborsClassifier with X-ARES' softmax weights, step
for step, without importing scikit-learn in a run: same predictions on random sets, exact ties and zero rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from xares_hf.probes.knn import knn_predict


def _sklearn(train_x, train_y, test_x, k=10, temperature=0.07):
    model = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine", algorithm="brute",
                                 weights=lambda d: np.exp((1.0 - d) / temperature))
    return model.fit(train_x, train_y).predict(test_x)


@pytest.mark.parametrize("trial", range(40))
def test_knn_predicts_what_scikit_learn_predicts(trial):
    rng = np.random.default_rng(trial)
    n, q, dim, classes = int(rng.integers(3, 200)), int(rng.integers(1, 120)), int(rng.integers(1, 48)), int(rng.integers(2, 12))
    dtype = (np.float32, np.float64)[trial % 2]
    train_x, test_x = rng.standard_normal((n, dim)).astype(dtype), rng.standard_normal((q, dim)).astype(dtype)
    if trial % 3 == 0:  # repeated clips: neighbours at exactly equal distance, votes tied
        train_x[n // 2 :] = train_x[: n - n // 2]
        test_x[: min(q, n) // 2] = train_x[: min(q, n) // 2]
    if trial % 5 == 0:
        train_x[0] = 0.0  # a silent clip's embedding
    labels = rng.integers(0, classes, n)
    train_y = labels if trial % 4 else np.array([f"class {v}" for v in labels])
    ours = knn_predict(train_x, train_y, test_x)
    assert ours.dtype == np.asarray(train_y).dtype
    assert np.array_equal(ours, _sklearn(train_x, train_y, test_x))


def test_knn_scores_queries_in_chunks_alike(monkeypatch):
    from xares_hf.probes import knn

    rng = np.random.default_rng(0)
    train_x, test_x, train_y = rng.standard_normal((50, 8)), rng.standard_normal((30, 8)), rng.integers(0, 3, 50)
    whole = knn_predict(train_x, train_y, test_x)
    monkeypatch.setattr(knn, "QUERY_CHUNK", 7)
    assert np.array_equal(knn_predict(train_x, train_y, test_x), whole)
    assert knn_predict(train_x, train_y, test_x[:0]).shape == (0,)

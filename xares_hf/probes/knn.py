"""The X-ARES k-NN probe: cosine neighbours, votes weighted by softmax(similarity / temperature)."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier


def knn_predict(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 10, temperature: float = 0.07
) -> np.ndarray:
    """Predicted classes of ``test_x`` from the ``k`` most cosine-similar training embeddings.

    Each neighbour votes with weight exp(similarity / temperature); the softmax normaliser over the k
    neighbours is the same for every class, so the argmax equals X-ARES' softmax-weighted vote.
    """
    k = min(k, len(train_x))

    def weights(distances: np.ndarray) -> np.ndarray:
        return np.exp((1.0 - distances) / temperature)

    model = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=weights)
    model.fit(train_x, train_y)
    return model.predict(test_x)

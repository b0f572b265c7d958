"""The X-ARES k-NN probe: cosine neighbours, votes weighted by softmax(similarity / temperature); and xares
0.1.3's per-dimension variant, for its protocol (:mod:`xares_hf.protocols` says which runs)."""

from __future__ import annotations

import numpy as np


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

    from sklearn.neighbors import KNeighborsClassifier  # 1.2 s to import: only when k-NN runs

    model = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=weights)
    model.fit(train_x, train_y)
    return model.predict(test_x)


def per_dimension_knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, num_classes: int,
                              k: int = 10, temperature: float = 0.07) -> np.ndarray:
    """xares 0.1.3's k-NN (xares/trainer.py l. 212-249, class ``KNN``; protocol "xares-0.1.3"), in float32 as it does.

    The training matrix is normalised per feature dimension over the training set (``normalize(train.T, dim=1)``),
    the queries per sample; the k largest dot products vote with softmax(similarity / temperature) weights."""
    import torch

    train = torch.nn.functional.normalize(torch.as_tensor(np.ascontiguousarray(train_x, np.float32)).T, dim=1, p=2)
    labels = torch.as_tensor(np.asarray(train_y, np.int64)).view(1, -1)
    k = min(k, train.shape[1])
    predictions = []
    for start in range(0, len(test_x), 1024):
        query = torch.nn.functional.normalize(torch.as_tensor(np.ascontiguousarray(test_x[start:start + 1024], np.float32)),
                                              dim=1, p=2)
        sims, indices = (query @ train).topk(k, largest=True, sorted=True)
        neighbours = torch.gather(labels.expand(len(query), -1), 1, indices)
        votes = torch.nn.functional.one_hot(neighbours, num_classes=num_classes) * torch.softmax(sims / temperature, 1)[..., None]
        predictions.append(votes.sum(1).argmax(1))
    return torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64)

"""The X-ARES k-NN probe: cosine neighbours, votes weighted by softmax(similarity / temperature); and xares
0.1.3's per-dimension variant, for its protocol (:mod:`xares_hf.protocols` says which runs)."""

from __future__ import annotations

import numpy as np


# queries scored at a time: a (chunk, train) distance matrix (4 GB of float32 for 100k training clips at 10k)
QUERY_CHUNK = 1024


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), as scikit-learn's ``normalize`` computes it."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0.0] = 1.0
    return x / norms[:, None]


def knn_predict(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 10, temperature: float = 0.07
) -> np.ndarray:
    """Predicted classes of ``test_x`` from the ``k`` most cosine-similar training embeddings.

    Each neighbour votes with weight exp(similarity / temperature); the softmax normaliser over the k
    neighbours is the same for every class, so the argmax equals X-ARES' softmax-weighted vote; a tie goes to
    the smaller class. The computation is scikit-learn's brute-force cosine ``KNeighborsClassifier`` with these
    weights, step for step (tests/test_knn.py checks they agree), without importing scikit-learn (1.4 s).
    """
    train_x, test_x = np.asarray(train_x), np.asarray(test_x)
    k = min(k, len(train_x))
    classes, labels = np.unique(np.asarray(train_y), return_inverse=True)
    train = _unit_rows(train_x)
    predicted = []
    for start in range(0, len(test_x), QUERY_CHUNK):
        distance = _unit_rows(test_x[start : start + QUERY_CHUNK]) @ train.T
        distance *= -1
        distance += 1
        np.clip(distance, 0, 2, out=distance)
        rows = np.arange(len(distance))[:, None]
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        nearest = nearest[rows, np.argsort(distance[rows, nearest], axis=1)]
        weights = np.exp((1.0 - distance[rows, nearest]) / temperature)
        votes = labels[nearest]
        scores = np.stack([np.sum(weights * (votes == c), axis=1) for c in range(len(classes))], axis=1)
        predicted.append(classes[np.argmax(scores, axis=1)])
    return np.concatenate(predicted) if predicted else classes[:0]


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

"""Probes trained or fit on frozen embeddings: the linear (MLP) probe and k-NN."""

from .knn import knn_predict
from .linear import ProbeResult, linear_head, train_linear_probe

__all__ = ["ProbeResult", "knn_predict", "linear_head", "train_linear_probe"]

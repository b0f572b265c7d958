"""Probes trained or fit on frozen embeddings: linear (clip and frame), k-NN, retrieval towers and ASR heads."""

from pathlib import Path

from .knn import knn_predict
from .asr import AsrResult, train_asr_probe
from .frame import train_frame_probe
from .linear import ProbeResult, linear_head, train_linear_probe
from .retrieval import RetrievalResult, train_retrieval_probe

SOURCE_FILES = sorted(Path(__file__).parent.glob("*.py"))  # what the result cache hashes: editing a probe retrains

__all__ = ["SOURCE_FILES", "AsrResult", "ProbeResult", "knn_predict", "linear_head", "train_asr_probe", "train_frame_probe", "train_linear_probe", "RetrievalResult", "train_retrieval_probe"]

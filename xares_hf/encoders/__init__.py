"""Encoders: the X-ARES contract, transformers models, encoder files and weight-free baselines."""

from .baseline import BASELINES, LogMelEncoder
from .contract import EncoderContractError, EncoderReport, check_encoder, encode_batch
from .loading import load_encoder
from .transformers_encoder import TransformersEncoder

__all__ = [
    "BASELINES",
    "EncoderContractError",
    "EncoderReport",
    "LogMelEncoder",
    "TransformersEncoder",
    "check_encoder",
    "encode_batch",
    "load_encoder",
]

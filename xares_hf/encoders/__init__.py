"""Encoders: the X-ARES contract, transformers models, encoder files, and built-in baselines (log-mel, silero-vad)."""

from .baseline import LogMelEncoder
from .contract import EncoderContractError, EncoderReport, check_encoder, encode_batch
from .loading import BUILTIN_ENCODERS, load_encoder
from .transformers_encoder import TransformersEncoder

__all__ = [
    "BUILTIN_ENCODERS",
    "EncoderContractError",
    "EncoderReport",
    "LogMelEncoder",
    "TransformersEncoder",
    "check_encoder",
    "encode_batch",
    "load_encoder",
]

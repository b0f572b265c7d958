"""Audio-text retrieval (Clotho): audio and text towers trained contrastively, scored by Recall@1."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import scoring
from ..probes.retrieval import train_retrieval_probe
from .base import Context, Round


def evaluate_round(ctx: Context, data: Round) -> dict[str, Any]:
    card = ctx.card

    def score(audio: np.ndarray, text: np.ndarray, owner: np.ndarray, selection: bool = True) -> float:
        return scoring.compute(card.metric, predictions=text, references=owner, audio_embeddings=audio, selection=selection)

    result = train_retrieval_probe(
        (data.train.pooled, data.train.labels),
        (data.valid.pooled, data.valid.labels),
        (data.test.pooled, data.test.labels),
        score=score,
        tokenizer=card.probe.tokenizer,
        embed_dim=card.probe.embed_dim,
        epochs=card.probe.epochs,
        learning_rate=card.probe.learning_rate,
        batch_size=card.probe.batch_size,
        seed=ctx.seed,
        desc=f"retrieval {card.name}/{data.name}",
        layers=ctx.layers,
    )
    return {
        "mlp": score(result.audio_embeddings, result.text_embeddings, result.caption_owner, selection=False),
        "best_epoch": result.best_epoch,
        "tokenizer": result.tokenizer,
        "valid": max(result.valid_scores),
        "layer_weights": result.layer_weights,
    }

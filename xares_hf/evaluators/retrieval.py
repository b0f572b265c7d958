"""Audio-text retrieval (Clotho): audio and text towers trained contrastively, scored by Recall@1."""

from __future__ import annotations

import numpy as np

from .. import scoring
from ..probes.retrieval import train_retrieval_probe
from .base import Context, Round, RoundOutcome


def evaluate_round(ctx: Context, data: Round) -> RoundOutcome:
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
        raw_logits=ctx.protocol.retrieval_logits == "raw-dot",
    )
    return RoundOutcome(mlp=score(result.audio_embeddings, result.text_embeddings, result.caption_owner, selection=False),
                        valid=max(result.valid_scores), best_epoch=result.best_epoch, valid_history=result.valid_scores,
                        details={"tokenizer": result.tokenizer}, layer_weights=result.layer_weights)

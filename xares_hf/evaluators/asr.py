"""ASR (LibriSpeech): an adapter into a frozen causal LM, or a light CTC probe, scored by iWER."""

from __future__ import annotations

from .. import scoring
from ..probes.asr import train_asr_probe
from .base import Context, Round, RoundOutcome


def evaluate_round(ctx: Context, data: Round) -> RoundOutcome:
    card = ctx.card

    def score(hypotheses: list[str], references: list[str], selection: bool = True) -> float:
        return scoring.compute(card.metric, predictions=hypotheses, references=references, selection=selection)

    result = train_asr_probe(
        (data.train.frames, data.train.labels),
        (data.valid.frames, data.valid.labels),
        data.test.frames,
        score=score,
        head=card.probe.head,
        decoder=card.probe.decoder,
        epochs=card.probe.epochs,
        learning_rate=card.probe.learning_rate,
        batch_size=card.probe.batch_size,
        seed=ctx.seed,
        max_new_tokens=card.probe.max_new_tokens,
        device=ctx.device,
        desc=f"asr {card.name}/{data.name}",
        layers=ctx.layers,
        xares_013=ctx.protocol.asr_llm_head == "xares-0.1.3",
    )
    return RoundOutcome(mlp=score(result.test_hypotheses, data.test.labels, selection=False), valid=max(result.valid_scores),
                        best_epoch=result.best_epoch, valid_history=result.valid_scores,
                        details={"asr_head": result.head, "decoder": result.decoder}, layer_weights=result.layer_weights)

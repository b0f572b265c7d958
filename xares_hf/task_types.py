"""The task types, one registration each: what a task of that type may be labelled and scored with, what it
needs from encoding, which evaluator scores it, and its names on the Hub. Cards, encoding, the evaluators and the
Hub export read from here; adding a task type is one entry (``tests/test_task_type_registry.py`` walks them).
Metrics have their own registry: :data:`xares_hf.scoring.METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Callable

from .scoring import METRICS

# what the k-NN probe reports, on every task type that allows it: the metric registry's one metric k-NN reports
(KNN_METRIC,) = [name for name, spec in METRICS.items() if "knn" in spec.probes]


@dataclass(frozen=True)
class TaskTypeSpec:
    """One task type."""

    name: str
    label_kinds: frozenset[str]  # the cards' ``labels.kind`` it accepts
    metrics: frozenset[str]  # the cards' ``metric`` it accepts (keys of xares_hf.scoring.METRICS)
    evaluator: str  # module of xares_hf.evaluators whose ``evaluate_round(ctx, round)`` scores one round
    probe: str  # the probe head, in words
    needs_frames: bool  # every frame is stored, not only the pooled embedding
    strict_frames: bool  # frame counts must follow the encoder's hop (labels are per frame)
    knn: bool  # k-NN may run (for single-label cards)
    display_name: str
    hub_task_type: str  # https://huggingface.co/tasks id ("other" where none fits)

    def evaluate_round(self) -> Callable:
        """The evaluator's ``evaluate_round`` (imported on use: ASR pulls in a causal LM stack)."""
        return import_module(f"xares_hf.evaluators.{self.evaluator}").evaluate_round


TASK_TYPES: dict[str, TaskTypeSpec] = {spec.name: spec for spec in (
    TaskTypeSpec("clip", frozenset({"index", "class_name", "multi_label"}), frozenset({"accuracy", "mAP"}), "clip",
                 "LayerNorm + Linear on mean-pooled frames", needs_frames=False, strict_frames=False, knn=True,
                 display_name="Audio classification", hub_task_type="audio-classification"),
    TaskTypeSpec("frame", frozenset({"events"}), frozenset({"segmentf1_macro", "segmentf1_micro"}), "frame",
                 "LayerNorm + Linear on every frame", needs_frames=True, strict_frames=True, knn=False,
                 display_name="Frame-level audio event detection", hub_task_type="other"),
    TaskTypeSpec("contrastive", frozenset({"captions"}), frozenset({"recallatk_r1"}), "retrieval",
                 "audio and text towers trained contrastively", needs_frames=False, strict_frames=False, knn=False,
                 display_name="Audio-text retrieval", hub_task_type="other"),
    TaskTypeSpec("asr", frozenset({"transcript"}), frozenset({"WER_inv"}), "asr",
                 "an adapter into a frozen causal LM, or a CTC probe", needs_frames=True, strict_frames=False, knn=False,
                 display_name="Automatic speech recognition", hub_task_type="automatic-speech-recognition"),
)}


def task_type(name: str) -> TaskTypeSpec:
    """The registered task type of this name."""
    if name not in TASK_TYPES:
        raise ValueError(f"unknown task type {name!r}; known: {', '.join(TASK_TYPES)}")
    return TASK_TYPES[name]

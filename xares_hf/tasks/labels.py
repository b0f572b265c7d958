"""Turn a sample's JSON into a label as its card's label spec says (no per-task Python)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .card import LabelSpec


class LabelError(ValueError):
    """A sample's label is missing or outside the card's classes; the message names the sample."""


@dataclass(frozen=True)
class Event:
    """A labelled time span of a clip, in seconds."""

    onset: float
    offset: float
    classes: tuple[int, ...]


def frame_targets(events: list[Event], hop_size_in_ms: float, num_frames: int, num_classes: int) -> np.ndarray:
    """(num_frames, num_classes) 0/1 targets at the encoder's hop, as X-ARES builds them.

    An event covers frames ceil(onset / hop) up to, not including, ceil(offset / hop); targets are
    trimmed or zero-padded to the encoder's frame count.
    """
    hop = hop_size_in_ms / 1000.0
    target = np.zeros((num_frames, num_classes), dtype=np.float32)
    for event in events:
        start = math.ceil(round(event.onset / hop, 9))
        end = math.ceil(round(event.offset / hop, 9))
        target[start:end, list(event.classes)] = 1.0
    return target


class LabelEncoder:
    """Maps JSON label fields to class indices (single-label) or many-hot vectors (multi-label)."""

    def __init__(self, spec: LabelSpec, task: str) -> None:
        self.spec = spec
        self.task = task
        self._index = {name: i for i, name in enumerate(spec.classes or [])}

    @property
    def multi_label(self) -> bool:
        return self.spec.kind == "multi_label"

    def encode(self, meta: Any, where: str, duration: float | None = None) -> Any:
        """The label of one sample; ``where`` (split, file, key) goes into any error.

        ``duration`` (seconds), when known, lets events be checked against the clip's length.
        """
        spec = self.spec
        if spec.kind == "events":
            return self._events(meta, where, duration)
        if spec.kind == "captions":
            return self._captions(meta, where)
        if not isinstance(meta, dict) or spec.field not in meta:
            raise LabelError(f"task '{self.task}', {where}: sample JSON has no field '{spec.field}'")
        value = meta[spec.field]
        if spec.kind == "transcript":
            if not isinstance(value, str) or not value.strip():
                raise LabelError(f"task '{self.task}', {where}: transcript in field '{spec.field}' is empty or not text")
            return value
        if spec.kind == "index":
            return self._encode_index(value, where)
        if spec.kind == "class_name":
            return self._lookup(value, where)
        target = np.zeros(spec.num_classes, dtype=np.float32)
        target[self._names(value, where)] = 1.0
        return target

    def _names(self, value: Any, where: str) -> list[int]:
        names = [value] if not isinstance(value, str) or not self.spec.separator else value.split(self.spec.separator)
        names = [str(n).strip() for n in names if str(n).strip()]
        if not names:
            raise LabelError(f"task '{self.task}', {where}: field '{self.spec.field}' names no class")
        return [self._lookup(n, where) for n in names]

    def _events(self, meta: Any, where: str, duration: float | None) -> list[Event]:
        spec = self.spec
        records = meta.get(spec.events_field) if spec.events_field and isinstance(meta, dict) else meta
        if not isinstance(records, list):
            raise LabelError(f"task '{self.task}', {where}: expected a list of events, got {type(records).__name__}")
        events = []
        for i, record in enumerate(records):
            missing = [f for f in (spec.onset_field, spec.offset_field, spec.field) if not isinstance(record, dict) or f not in record]
            if missing:
                raise LabelError(f"task '{self.task}', {where}: event {i} lacks {', '.join(repr(m) for m in missing)}")
            try:
                onset, offset = float(record[spec.onset_field]), float(record[spec.offset_field])
            except (TypeError, ValueError):
                raise LabelError(f"task '{self.task}', {where}: event {i} has non-numeric onset/offset") from None
            if not (math.isfinite(onset) and math.isfinite(offset)) or onset < 0 or offset <= onset:
                raise LabelError(f"task '{self.task}', {where}: event {i} spans {onset}..{offset} s, not 0 <= onset < offset")
            if duration is not None and onset >= duration + 0.05:
                raise LabelError(
                    f"task '{self.task}', {where}: event {i} starts at {onset} s, outside the {duration:.2f} s clip"
                )
            events.append(Event(onset, offset, tuple(self._names(record[spec.field], where))))
        return events

    def _captions(self, meta: Any, where: str) -> list[str]:
        spec = self.spec
        if spec.field:
            values = meta.get(spec.field) if isinstance(meta, dict) else None
            values = [values] if isinstance(values, str) else values
        else:
            values = [v for v in meta.values() if isinstance(v, str)] if isinstance(meta, dict) else None
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise LabelError(f"task '{self.task}', {where}: no captions, or an empty caption, in the sample JSON")
        return list(values)

    def _encode_index(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise LabelError(
                f"task '{self.task}', {where}: field '{self.spec.field}' = {value!r} is not an integer class index"
            )
        index = int(value)
        if not 0 <= index < self.spec.num_classes:
            raise LabelError(
                f"task '{self.task}', {where}: class index {index} outside 0..{self.spec.num_classes - 1}"
            )
        return index

    def _lookup(self, name: Any, where: str) -> int:
        name = str(name) if isinstance(name, int) and not isinstance(name, bool) else name
        if name not in self._index:
            shown = ", ".join(list(self._index)[:10]) + (", ..." if len(self._index) > 10 else "")
            raise LabelError(
                f"task '{self.task}', {where}: label {name!r} in field '{self.spec.field}' "
                f"is not one of the card's classes ({shown})"
            )
        return self._index[name]

    def encode_many(self, metas: list[Any], wheres: list[str]) -> Any:
        """Labels for many samples: int64 indices or a float32 many-hot matrix; a list for other kinds."""
        labels = [self.encode(m, w) for m, w in zip(metas, wheres)]
        if self.spec.kind in ("events", "captions", "transcript"):
            return labels
        if self.multi_label:
            return np.stack(labels) if labels else np.zeros((0, self.spec.num_classes), np.float32)
        return np.asarray(labels, dtype=np.int64)

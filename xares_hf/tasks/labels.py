"""Turn a sample's JSON into a label as its card's label spec says (no per-task Python)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..messages import quoted
from .card import LabelSpec


class LabelError(ValueError):
    """A sample's label is missing or outside the card's classes; the message names the sample."""


EDGE_TOLERANCE_S = 0.05  # event times this close past a clip's end are rounding, not events outside the clip
_INDEX = re.compile(r"[0-9]{1,18}")  # ASCII digits only: '²'.isdigit() is True, but int('²') fails


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
    target = np.zeros((num_frames, num_classes), dtype=np.float32)
    for event in events:
        start, end = event_frames(event, hop_size_in_ms)
        target[start:end, list(event.classes)] = 1.0
    return target


def event_frames(event: Event, hop_size_in_ms: float) -> tuple[int, int]:
    """The frames ``start:end`` an event covers at the encoder's hop (before trimming to the frame count)."""
    hop = hop_size_in_ms / 1000.0
    return math.ceil(round(event.onset / hop, 9)), math.ceil(round(event.offset / hop, 9))


def unscored_events(events: list[Event], hop_size_in_ms: float, num_frames: int) -> list[str]:
    """Why each event that covers no frame of the encoder's ``num_frames`` (too short for the hop, or past the last
    frame) is not in the targets: such an event is never scored."""
    reasons = []
    for i, event in enumerate(events):
        start, end = event_frames(event, hop_size_in_ms)
        if min(end, num_frames) <= start:
            reasons.append(f"event {i} ({event.onset}..{event.offset} s) covers no frame of the encoder's output "
                           f"({num_frames} frames of {hop_size_in_ms} ms): it is not scored")
    return reasons


class LabelEncoder:
    """Maps JSON label fields to class indices (single-label) or many-hot vectors (multi-label)."""

    def __init__(self, spec: LabelSpec, task: str) -> None:
        self.spec = spec
        self.task = task
        self._index = {name: i for i, name in enumerate(spec.classes or [])}

    @property
    def multi_label(self) -> bool:
        return self.spec.kind == "multi_label"

    def encode(self, meta: Any, where: str, duration: float | None = None, notes: list[str] | None = None) -> Any:
        """The label of one sample; ``where`` (split, file, key) goes into any error.

        ``duration`` (seconds), when known, lets events be checked against the clip's length. What the label
        holds that is not used although it is no error (an empty name in 'a,,b', a class named twice, a caption
        field that is not text, an event running past the clip's end) is appended to ``notes`` when given.
        """
        spec = self.spec
        notes = [] if notes is None else notes
        if spec.kind == "events":
            return self._events(meta, where, duration, notes)
        if spec.kind == "captions":
            return self._captions(meta, where, notes)
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
        target[self._names(value, where, notes)] = 1.0
        return target

    def _names(self, value: Any, where: str, notes: list[str]) -> list[int]:
        """Class indices of a name, or of names joined by the separator; empty and repeated names are noted."""
        self._check_scalar(value, where)
        separator = self.spec.separator
        parts = value.split(separator) if isinstance(value, str) and separator else [value]
        names = [str(n).strip() for n in parts]
        if not any(names):
            raise LabelError(f"task '{self.task}', {where}: field '{self.spec.field}' names no class")
        if not all(names):
            notes.append(f"field '{self.spec.field}' = {quoted(value)}: an empty class name between separators is ignored")
        indices = [self._lookup(n, where) for n in names if n]
        repeated = sorted({n for n in names if n and names.count(n) > 1})
        if repeated:
            notes.append(f"field '{self.spec.field}' = {quoted(value)} names {', '.join(map(repr, repeated))} more than once: "
                         "counted once")
        return list(dict.fromkeys(indices))

    def _check_scalar(self, value: Any, where: str) -> None:
        """A label is a string or an integer, never a list, object, number with a fraction, bool or null."""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            kind = {list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
            raise LabelError(f"task '{self.task}', {where}: field '{self.spec.field}' is {kind} ({quoted(value)}), "
                             "not a class name")

    def _events(self, meta: Any, where: str, duration: float | None, notes: list[str]) -> list[Event]:
        spec = self.spec
        if spec.events_field and not isinstance(meta, dict):
            raise LabelError(f"task '{self.task}', {where}: sample JSON is not an object with field '{spec.events_field}'")
        records = meta.get(spec.events_field) if spec.events_field else meta
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
            if duration is not None and onset >= duration + EDGE_TOLERANCE_S:
                raise LabelError(
                    f"task '{self.task}', {where}: event {i} starts at {onset} s, outside the {duration:.2f} s clip"
                )
            if duration is not None and offset > duration + EDGE_TOLERANCE_S:
                notes.append(f"event {i} ends at {offset} s, after the end of the {duration:.2f} s clip: "
                             "the part after the end is not scored")
            events.append(Event(onset, offset, tuple(self._names(record[spec.field], where, notes))))
        return events

    def _captions(self, meta: Any, where: str, notes: list[str]) -> list[str]:
        spec = self.spec
        if spec.field:
            values = meta.get(spec.field) if isinstance(meta, dict) else None
            values = [values] if isinstance(values, str) else values
        else:
            values = [v for v in meta.values() if isinstance(v, str)] if isinstance(meta, dict) else None
            other = [k for k, v in meta.items() if not isinstance(v, str)] if isinstance(meta, dict) else []
            if other and values:
                notes.append(f"field(s) {', '.join(map(repr, other[:5]))}{', ...' if len(other) > 5 else ''} "
                             "of the sample JSON are not text: not used as captions")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise LabelError(f"task '{self.task}', {where}: no captions, or an empty caption, in the sample JSON")
        return list(values)

    def _encode_index(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _INDEX.fullmatch(value))):
            raise LabelError(
                f"task '{self.task}', {where}: field '{self.spec.field}' = {quoted(value)} is not an integer class index"
            )
        index = int(value)
        if not 0 <= index < self.spec.num_classes:
            raise LabelError(
                f"task '{self.task}', {where}: class index {quoted(index)} outside 0..{self.spec.num_classes - 1}"
            )
        return index

    def _lookup(self, name: Any, where: str) -> int:
        self._check_scalar(name, where)
        name = str(name)
        if name not in self._index:
            shown = ", ".join(list(self._index)[:10]) + (", ..." if len(self._index) > 10 else "")
            raise LabelError(
                f"task '{self.task}', {where}: label {quoted(name)} in field '{self.spec.field}' "
                f"is not one of the card's classes ({shown})"
            )
        return self._index[name]

    def encode_many(self, metas: list[Any], wheres: list[str], durations: list[float] | None = None,
                    notes: list[tuple[int, str]] | None = None) -> Any:
        """Labels for many samples: int64 indices or a float32 many-hot matrix; a list for other kinds.

        With ``notes``, each sample's notes (see :meth:`encode`) are appended as ``(sample index, note)``."""
        labels = []
        for i, (meta, where) in enumerate(zip(metas, wheres, strict=True)):
            mine: list[str] = []
            labels.append(self.encode(meta, where, None if durations is None else float(durations[i]), mine))
            if notes is not None:
                notes.extend((i, note) for note in mine)
        if self.spec.kind in ("events", "captions", "transcript"):
            return labels
        if self.multi_label:
            return np.stack(labels) if labels else np.zeros((0, self.spec.num_classes), np.float32)
        return np.asarray(labels, dtype=np.int64)

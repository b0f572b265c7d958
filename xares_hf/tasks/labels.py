"""Turn a sample's JSON into a label as its card's label spec says (no per-task Python)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .card import LabelSpec


class LabelError(ValueError):
    """A sample's label is missing or outside the card's classes; the message names the sample."""


class LabelEncoder:
    """Maps JSON label fields to class indices (single-label) or many-hot vectors (multi-label)."""

    def __init__(self, spec: LabelSpec, task: str) -> None:
        self.spec = spec
        self.task = task
        self._index = {name: i for i, name in enumerate(spec.classes or [])}

    @property
    def multi_label(self) -> bool:
        return self.spec.kind == "multi_label"

    def encode(self, meta: Any, where: str) -> int | np.ndarray:
        """The label of one sample; ``where`` (split, file, key) goes into any error."""
        spec = self.spec
        if not isinstance(meta, dict) or spec.field not in meta:
            raise LabelError(f"task '{self.task}', {where}: sample JSON has no field '{spec.field}'")
        value = meta[spec.field]
        if spec.kind == "index":
            return self._encode_index(value, where)
        if spec.kind == "class_name":
            return self._lookup(value, where)
        names = [n.strip() for n in str(value).split(spec.separator) if n.strip()]
        if not names:
            raise LabelError(f"task '{self.task}', {where}: field '{spec.field}' names no class")
        target = np.zeros(spec.num_classes, dtype=np.float32)
        for name in names:
            target[self._lookup(name, where)] = 1.0
        return target

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
        if name not in self._index:
            shown = ", ".join(list(self._index)[:10]) + (", ..." if len(self._index) > 10 else "")
            raise LabelError(
                f"task '{self.task}', {where}: label {name!r} in field '{self.spec.field}' "
                f"is not one of the card's classes ({shown})"
            )
        return self._index[name]

    def encode_many(self, metas: list[Any], wheres: list[str]) -> np.ndarray:
        """Labels for many samples: int64 indices, or a float32 many-hot matrix."""
        labels = [self.encode(m, w) for m, w in zip(metas, wheres)]
        if self.multi_label:
            return np.stack(labels) if labels else np.zeros((0, self.spec.num_classes), np.float32)
        return np.asarray(labels, dtype=np.int64)

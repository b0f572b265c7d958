"""What a task's splits hold together, checked once they are encoded and before any probe trains.

Two kinds of findings:

- errors: the same sample (same key, audio and label) in two splits or folds, i.e. test data trained on, stops the
  run in both ``on_bad_sample`` modes; the same sample twice in one split is a bad sample (an error, or with
  ``"skip"`` its later copy is left out and listed in ``skipped``);
- things that are not scored or cannot be learnt although nothing is wrong with the data, each listed in the
  task's ``left_out`` as ``{"split", "file", "key", "reason"}``: a class in test that no training sample has, a
  multi-label class without a positive test sample, an event that covers no frame at the encoder's hop, a test
  character outside the CTC head's vocabulary, a training transcript too long for CTC to align to its frames.

A key alone does not identify a sample: X-ARES' shards use the audio file's stem as key, so different clips
(``id10001/a/00001.wav``, ``id10002/b/00001.wav``) share keys; only the same key with the same duration, label and
embedding is taken for the same sample.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Callable

import numpy as np

from ..messages import quoted
from .card import TaskCard
from .labels import unscored_events

Entry = dict[str, Any]


def repeated_samples(card: TaskCard, splits: dict[str, Any], on_bad_sample: str) -> tuple[dict[str, list[int]], list[Entry]]:
    """Rows of each split to leave out (later copies of a sample already in the same split, ``"skip"`` only) and
    their ``skipped`` entries; raises :class:`~xares_hf.data.DataError` for a sample in two splits, or repeated in one
    with ``on_bad_sample="error"``. ``splits`` maps split names to their :class:`SplitEmbeddings`."""
    from ..data.shards import DataError

    by_key: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for split, emb in splits.items():
        for row, key in enumerate(emb.keys):
            by_key[key].append((split, row))
    drop: dict[str, list[int]] = defaultdict(list)
    skipped: list[Entry] = []
    for key, places in by_key.items():
        if len({splits[s].urls[r] for s, r in places}) < 2:
            continue  # one shard: crops of one clip, or valid and test given the same shards
        kept: dict[tuple, list[tuple[str, int]]] = defaultdict(list)  # by (duration, label): the candidates
        for split, row in places:
            emb = splits[split]
            same = kept[(float(emb.durations[row]), json.dumps(emb.metas[row], sort_keys=True))]
            twin = next((k for k in same if splits[k[0]].urls[k[1]] != emb.urls[row]
                         and np.allclose(splits[k[0]].pooled[k[1]], emb.pooled[row], rtol=1e-4, atol=1e-6)), None)
            if twin is None:
                same.append((split, row))
                continue
            first, here = splits[twin[0]].urls[twin[1]], splits[split].urls[row]
            if twin[0] != split:
                raise DataError(
                    f"task '{card.name}': sample '{key}' is in split '{twin[0]}' (file {first}) and in split '{split}' "
                    f"(file {here}) with the same audio and label: splits and folds must not share samples"
                )
            reason = f"the same sample (key, audio and label) is also in file {first} of this split"
            if on_bad_sample == "error":
                raise DataError(f"task '{card.name}', split '{split}', file {here}, sample '{key}': {reason}")
            drop[split].append(row)
            skipped.append({"split": split, "file": here, "key": key, "reason": reason})
    return dict(drop), skipped


def not_scored(card: TaskCard, data: dict[str, Any], places: dict[str, tuple[list[str], list[str]]],
               hop_size_in_ms: float) -> list[Entry]:
    """The ``left_out`` entries of what the probes cannot learn or score (see the module's docstring).

    ``data`` maps split names to their :class:`~xares_hf.evaluators.SplitData`, ``places`` to their (files, keys)."""
    from ..probing import round_splits

    found: list[Entry] = []

    def note(split: str, row: int | None, reason: str) -> None:
        file, key = ("", "") if row is None else (places[split][0][row], places[split][1][row])
        found.append({"split": split, "file": file, "key": key, "reason": reason})

    kind = card.labels.kind
    rounds = round_splits(card, list(data))
    if kind in ("index", "class_name", "multi_label", "events"):
        names = card.labels.classes or [str(i) for i in range(card.labels.num_classes)]
        rows = {split: _rows_by_class(kind, split_data.labels) for split, split_data in data.items()}
        for _, train, _, test in rounds:
            trained = set().union(*(rows[s] for s in train))
            for c in sorted(set(rows[test]) - trained):
                note(test, rows[test][c][0], f"class {quoted(names[c])} is in {len(rows[test][c])} sample(s) of "
                     f"'{test}' but in no training sample: the probe cannot learn it (first: this sample)")
            if kind == "multi_label":
                for c in sorted(set(range(card.labels.num_classes)) - set(rows[test])):
                    note(test, None, f"class {quoted(names[c])} has no positive sample in '{test}': its average "
                         "precision counts as 0 in the mAP")
    if kind == "events":
        for split, split_data in data.items():
            for row, (events, frames) in enumerate(zip(split_data.labels, split_data.frames.lengths, strict=True)):
                for reason in unscored_events(events, hop_size_in_ms, int(frames)):
                    note(split, row, reason)
    if kind == "transcript" and card.probe.head == "ctc":
        _ctc_limits(data, rounds, note)
    return found


def _rows_by_class(kind: str, labels: Any) -> dict[int, list[int]]:
    """Class index -> the rows (samples) of a split that have it."""
    rows: dict[int, list[int]] = defaultdict(list)
    if kind == "multi_label":
        for row, c in zip(*np.nonzero(labels)):
            rows[int(c)].append(int(row))
    elif kind == "events":
        for row, events in enumerate(labels):
            for c in sorted({c for event in events for c in event.classes}):
                rows[c].append(row)
    else:
        for row, c in enumerate(np.asarray(labels).tolist()):
            rows[int(c)].append(row)
    return rows


def _ctc_limits(data: dict[str, Any], rounds: list, note: Callable[[str, int | None, str], None]) -> None:
    """Test characters the CTC head cannot write; training transcripts it cannot align to their frames."""
    from ..probes.asr import ctc_min_frames, ctc_vocabulary

    for _, train, _, test in rounds:
        vocabulary = set(ctc_vocabulary([t for s in train for t in data[s].labels]))
        unknown: dict[str, list[int]] = defaultdict(list)
        for row, text in enumerate(data[test].labels):
            for char in sorted(set(text.lower()) - vocabulary):
                if not char.isspace():
                    unknown[char].append(row)
        for char, rows in sorted(unknown.items()):
            note(test, rows[0], f"character {quoted(char)} is in {len(rows)} transcript(s) of '{test}' but in no "
                 "training transcript: the CTC head can never write it (first: this sample)")
    for split in sorted({s for _, train, _, _ in rounds for s in train}):
        for row, (text, frames) in enumerate(zip(data[split].labels, data[split].frames.lengths, strict=True)):
            if frames < ctc_min_frames(text):
                note(split, row, f"the transcript needs at least {ctc_min_frames(text)} frames for CTC, the encoder "
                     f"gave {frames}: the CTC head learns nothing from this sample")

"""Task cards: the YAML description of one benchmark task, validated into a typed object.

A card says everything the pipeline needs to know about a task (where its shards are, how to read
its labels, how to train its probe and how to score it), so adding a standard task needs no Python.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..messages import quoted
from ..paths import inside
from ..scoring import METRICS
from ..task_types import TASK_TYPES, task_type

TaskType = Literal[tuple(TASK_TYPES)]  # the registries' names: a card names a registered task type and metric
Domain = Literal["speech", "sound", "music"]
Metric = Literal[tuple(METRICS)]
LabelKind = Literal["index", "class_name", "multi_label", "events", "captions", "transcript"]  # decoded by labels.py


class TaskCardError(ValueError):
    """A task card could not be read or is invalid; the message names the file and the field."""


MIN_CROP_LENGTH = 0.1  # seconds: a shorter crop holds no sound an audio benchmark scores (and 1e-6 s is 0 samples)
MAX_CLASSES = 100_000  # the probe's output layer is num_classes wide: a card must not size it to exhaust memory
# the only placeholder of a fold pattern: {fold}, or zero-padded like {fold:02d} / {fold:02} (the X-ARES cards')
_FOLD = re.compile(r"\{fold(?::0([1-9])d?)?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_pattern(pattern: str, what: str) -> str:
    """A glob pattern relative to the task's folder that cannot leave it: not empty, not absolute, no '..'."""
    if not pattern.strip():
        raise ValueError(f"{what} is empty")
    path = PurePosixPath(pattern)
    if path.is_absolute():
        raise ValueError(f"{what} {quoted(pattern)} is absolute: patterns are relative to <data_dir>/<task>/")
    if ".." in path.parts:
        raise ValueError(f"{what} {quoted(pattern)} has a '..' component: patterns must stay inside <data_dir>/<task>/")
    if any("**" in part and part != "**" for part in path.parts):
        raise ValueError(f"{what} {quoted(pattern)}: '**' can only be a whole path component")
    return pattern


class DataSpec(_Strict):
    """Where a task's WebDataset shards live, relative to ``<data_dir>/<task name>/``.

    Either ``splits`` (a glob pattern for each of train, valid and test) or ``folds`` with a
    ``fold_pattern`` containing ``{fold}`` (k-fold cross-validation) must be given. Patterns stay inside the
    task's folder (relative, no ``..``); the fold placeholder is ``{fold}`` or zero-padded ``{fold:02d}``, nothing
    else. That the splits (or folds) share no shard is checked where they are located (:func:`~xares_hf.data.shard_files`).
    """

    splits: dict[Literal["train", "valid", "test"], str] | None = None
    folds: list[Annotated[int, Field(ge=0)]] | None = None
    fold_pattern: str | None = None
    crop_length: float | None = Field(default=None, ge=MIN_CROP_LENGTH,
                                      description="seconds; clips are cut into sequential crops")
    max_duration: float = Field(
        default=3600, gt=0,
        description="seconds; a longer clip is refused (or, with crop_length, cut into crops) before it is decoded whole",
    )
    zenodo_id: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$", description="a Zenodo record number")
    hub_id: str | None = None

    @field_validator("splits")
    @classmethod
    def _relative_splits(cls, splits: dict[str, str] | None) -> dict[str, str] | None:
        for split, pattern in (splits or {}).items():
            _check_pattern(pattern, f"the {split} pattern")
        return splits

    @field_validator("fold_pattern")
    @classmethod
    def _one_placeholder(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        if not _FOLD.search(pattern):
            raise ValueError(f"{quoted(pattern)} must contain the placeholder {{fold}} (or a zero-padded {{fold:02d}})")
        rest = _FOLD.sub("", pattern)
        if "{" in rest or "}" in rest:
            raise ValueError(f"{quoted(pattern)}: the only placeholder allowed is {{fold}} or {{fold:0Nd}} (N = 1..9), "
                             "and no other braces")
        _check_pattern(_FOLD.sub("0", pattern), "the fold pattern")
        return pattern

    @model_validator(mode="after")
    def _splits_or_folds(self) -> "DataSpec":
        if (self.splits is None) == (self.folds is None):
            raise ValueError("give exactly one of 'splits' (train/valid/test patterns) or 'folds' with 'fold_pattern'")
        if self.splits is not None and set(self.splits) != {"train", "valid", "test"}:
            raise ValueError(f"'splits' needs train, valid and test patterns, got {sorted(self.splits)}")
        if self.folds is not None:
            if len(self.folds) < 2:
                raise ValueError("'folds' needs at least two folds")
            if len(set(self.folds)) != len(self.folds):
                raise ValueError(f"'folds' names a fold more than once: {self.folds}")
            if not self.fold_pattern:
                raise ValueError("'fold_pattern' must be given with 'folds' and contain '{fold}'")
        elif self.fold_pattern is not None:
            raise ValueError("'fold_pattern' needs 'folds'")
        return self

    def patterns(self) -> dict[str, str]:
        """Split or fold name -> glob pattern (fold names are ``fold<k>``).

        The fold number replaces the placeholder by substitution: card text is never run through ``str.format``."""
        if self.splits is not None:
            return dict(self.splits)
        return {f"fold{k}": _FOLD.sub(lambda m: str(k).zfill(int(m.group(1) or 0)), self.fold_pattern) for k in self.folds}


class LabelSpec(_Strict):
    """How a sample's JSON turns into a label.

    - ``index``: the field holds the class index itself (an int, or a string of digits);
    - ``class_name``: the field holds a class name, mapped through ``classes``;
    - ``multi_label``: the field holds several class names joined by ``separator``;
    - ``events``: a list of timed events (the JSON itself, or ``events_field`` of it), each with
      ``onset_field``/``offset_field`` in seconds and class name(s) in ``field`` (frame tasks);
    - ``captions``: the captions of a clip: ``field`` (a list of strings) or, without ``field``,
      every string value of the JSON (X-ARES' Clotho layout);
    - ``transcript``: the text in ``field`` (ASR).
    """

    kind: LabelKind
    field: str | None = None
    num_classes: int | None = Field(default=None, gt=1, le=MAX_CLASSES)
    classes: list[str] | None = None
    separator: str | None = None
    events_field: str | None = None
    onset_field: str = "onset"
    offset_field: str = "offset"

    @model_validator(mode="after")
    def _consistent(self) -> "LabelSpec":
        if self.kind in ("index", "class_name", "multi_label", "events"):
            if self.num_classes is None:
                raise ValueError(f"kind '{self.kind}' needs 'num_classes'")
        if self.kind != "captions" and not self.field:
            raise ValueError(f"kind '{self.kind}' needs 'field'")
        if self.kind in ("class_name", "multi_label", "events"):
            if not self.classes:
                raise ValueError(f"kind '{self.kind}' needs a 'classes' list")
            if len(self.classes) != self.num_classes:
                raise ValueError(f"'classes' has {len(self.classes)} names but num_classes is {self.num_classes}")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("'classes' contains duplicate names")
        if self.kind == "multi_label" and not self.separator:
            raise ValueError("kind 'multi_label' needs a 'separator'")
        for name in self.classes or []:  # a name the label reader can never produce would be a class never scored
            if not name.strip() or name != name.strip():
                raise ValueError(f"class name {quoted(name)} is empty or has surrounding whitespace")
            if self.separator and self.separator in name:
                raise ValueError(f"class name {quoted(name)} contains the separator {self.separator!r}")
        return self


class ProbeSpec(_Strict):
    """Hyper-parameters of the probe and of encoding (X-ARES defaults)."""

    epochs: int = Field(default=10, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=32, gt=0)
    batch_size_encode: int = Field(default=16, gt=0)
    pos_weight: float | None = Field(default=None, gt=0, description="BCE positive weight (frame tasks)")
    embed_dim: int = Field(default=1024, gt=0, description="joint embedding size (retrieval)")
    tokenizer: str | None = Field(default="google-bert/bert-base-uncased", description="text tokenizer (retrieval)")
    head: Literal["ctc", "llm"] = Field(default="llm", description="ASR head: frozen causal LM + adapter, or CTC")
    decoder: str | None = Field(default="Qwen/Qwen2.5-0.5B", description="causal LM of the ASR 'llm' head")
    max_new_tokens: int = Field(default=200, gt=0)


class MetricArgs(_Strict):
    """Arguments of the task metric (segment F1)."""

    segment_length_in_s: float = Field(default=1.0, ge=0.01)


class TaskCard(_Strict):
    """One benchmark task, as declared in its YAML card."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    formal_name: str
    domain: Domain
    task_type: TaskType = "clip"
    metric: Metric = "accuracy"
    metric_args: MetricArgs = MetricArgs()
    eval_weight: float = Field(ge=0)
    data: DataSpec
    labels: LabelSpec
    probe: ProbeSpec = ProbeSpec()
    knn: bool = True
    private: bool = False
    description: str = ""
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _type_fits(self) -> "TaskCard":
        spec = task_type(self.task_type)  # the registry says what each task type accepts
        kinds, metrics = spec.label_kinds, spec.metrics
        if self.labels.kind not in kinds:
            raise ValueError(f"task_type '{self.task_type}' needs labels.kind in {sorted(kinds)}, got '{self.labels.kind}'")
        if self.metric not in metrics:
            raise ValueError(f"task_type '{self.task_type}' is scored with {sorted(metrics)}, not '{self.metric}'")
        if self.metric == "mAP" and self.labels.kind != "multi_label":
            raise ValueError("metric 'mAP' needs labels.kind 'multi_label'")
        if self.labels.kind == "multi_label" and self.metric != "mAP":
            raise ValueError("multi-label clip tasks are scored with 'mAP'")
        if self.knn and (not spec.knn or self.labels.kind == "multi_label"):
            raise ValueError("knn applies only to single-label clip tasks: set 'knn: false'")
        if self.task_type == "frame" and self.data.crop_length is not None:
            raise ValueError("frame tasks cannot set data.crop_length (event times would no longer match)")
        return self

    @property
    def is_k_fold(self) -> bool:
        return self.data.folds is not None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TaskCard":
        """Read and validate a card; any problem raises :class:`TaskCardError` naming file and field."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TaskCardError(f"{path}: task card not found") from None
        except UnicodeDecodeError as err:
            raise TaskCardError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except OSError as err:
            raise TaskCardError(f"{path}: cannot read the task card: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            raise TaskCardError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
        if not isinstance(raw, dict):
            raise TaskCardError(f"{path}: a task card must be a YAML mapping, got {type(raw).__name__}")
        labels = raw.get("labels")
        if isinstance(labels, dict) and "classes_file" in labels:
            raw = {**raw, "labels": _read_classes_file(path, labels)}
        try:
            return cls.model_validate({**raw, "path": path})
        except ValidationError as err:
            raise TaskCardError(_describe(path, err)) from None


def _read_classes_file(card_path: Path, labels: dict) -> dict:
    """Class names from ``labels.classes_file`` (one per line, relative to the card) into ``labels.classes``."""
    if "classes" in labels:
        raise TaskCardError(f"{card_path}: field 'labels': give 'classes' or 'classes_file', not both")
    name = labels["classes_file"]
    field = f"{card_path}: field 'labels.classes_file'"
    if not isinstance(name, str) or not name.strip():
        raise TaskCardError(f"{field}: must be a file name next to the card, got {quoted(name)}")
    folder, file = card_path.parent, card_path.parent / name
    if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts or not inside(folder, file):
        raise TaskCardError(f"{field}: {quoted(name)} is outside the card's folder {folder.resolve()}")
    if not file.is_file():
        raise TaskCardError(f"{field}: {file} does not exist")
    try:
        text = file.read_text(encoding="utf-8-sig")  # a byte-order mark would become part of the first name
    except UnicodeDecodeError as err:
        raise TaskCardError(f"{field}: {file} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise TaskCardError(f"{field}: cannot read {file}: {err.strerror or err}") from None
    names = [line.rstrip("\r\n") for line in text.splitlines(keepends=True)]
    rest = {k: v for k, v in labels.items() if k != "classes_file"}
    return {**rest, "classes": [n for n in names if n != ""]}


def _describe(path: Path, err: ValidationError) -> str:
    """One line: the card, then each invalid field and what is wrong with it."""
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(card)"
        problems.append(f"field '{field}': {' '.join(e['msg'].split())}")
    return f"{path}: invalid task card: " + "; ".join(problems)

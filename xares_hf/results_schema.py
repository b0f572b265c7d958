"""The results file's schema: pydantic models made from the :class:`~xares_hf.results.Results` and
:class:`~xares_hf.results.TaskResult` fields (one place says what a field is), their JSON Schema (shipped with
the Space as ``spaces_app/results.schema.json``), and the check of a parsed file against them with one-line
messages that name the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .messages import quoted

SCHEMA_VERSION = 1
# what a file must hold although the class has a default (the class fills it in; every file writes it)
_WRITTEN = ("xares_hf_version", "created", "averages")
_CONFIG = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)  # JSON types only, no NaN or infinity


def _model(cls: type, name: str, overrides: dict[str, Any], required: tuple[str, ...] = ()) -> type[BaseModel]:
    """A strict pydantic model with ``cls``'s dataclass fields and types (fields with defaults may be missing)."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.name in required or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
            default = ...
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        fields[f.name] = (overrides.get(f.name, hints[f.name]), default)
    return create_model(name, __config__=_CONFIG, **fields)


@lru_cache(maxsize=1)
def models() -> tuple[type[BaseModel], type[BaseModel]]:
    """(task result model, results file model)."""
    from .results import Results, TaskResult

    # a fold's best_epoch may be null (no validation split to choose on)
    task = _model(TaskResult, "TaskResult", {"folds": dict[str, dict[str, typing.Optional[float]]]})
    results = _model(Results, "ResultsFile", {"tasks": list[task], "averages": dict[str, typing.Optional[float]],
                                              "schema_version": int}, required=_WRITTEN)
    return task, results


def json_schema() -> dict[str, Any]:
    """The results file's JSON Schema (draft 2020-12), as the Space validates uploads with it."""
    schema = models()[1].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["properties"]["schema_version"] = {"const": SCHEMA_VERSION, "title": "Schema Version"}
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True) + "\n"


_EXPECTED = {"float_type": "a finite number", "finite_number": "a finite number", "int_type": "an integer",
             "bool_type": "true or false", "string_type": "a string", "dict_type": "a JSON object",
             "model_type": "a JSON object", "list_type": "a JSON list"}


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _task_note(data: Any, loc: tuple) -> str:
    """`` (task 'name')`` for a field inside a task whose name is a string (the name itself excepted)."""
    if len(loc) < 3 or loc[0] != "tasks" or not isinstance(loc[1], int) or loc[2:] == ("name",):
        return ""
    try:
        name = data["tasks"][loc[1]].get("name")
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""
    return f" (task {quoted(name)})" if isinstance(name, str) else ""


def _message(err: dict, data: Any, source: str) -> str:
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part in ("int", "str", "float", "function-after")))
    where, note, value = _path(loc), _task_note(data, loc), err.get("input")
    if err["type"] == "missing":
        return f"{source}: field '{where}'{note} is missing"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown field '{where}'{note}"
    expected = _EXPECTED.get(err["type"])
    if expected is None:
        return f"{source}: field '{where}'{note}: {err['msg']}"
    got = quoted(value) if err["type"] == "finite_number" else f"{type(value).__name__} {quoted(value)}"
    return f"{source}: field '{where}'{note} must be {expected}, got {got}"


def check(data: Any, source: str = "results") -> None:
    """Raise ``ValueError`` naming ``source`` and the first wrong field unless ``data`` has the file's structure:
    the known fields only, each of its JSON type, and no NaN or infinity anywhere (free-form fields included)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not an xares-hf results file (a JSON object), got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ValueError(
            f"{source}: field 'schema_version' is {quoted(version)}, this xares-hf reads schema_version {SCHEMA_VERSION}"
        )
    try:
        models()[1].model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # an unknown field first
        raise ValueError(_message(first, data, source)) from None
    _finite(data, (), data, source)


def _finite(value: Any, loc: tuple, data: Any, source: str) -> None:
    """No NaN or infinity in free-form fields either (JSON itself has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{source}: field '{_path(loc)}'{_task_note(data, loc)} must be a finite number, got {quoted(value)}")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, (*loc, key), data, source)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _finite(item, (*loc, i), data, source)

"""Load an encoder class from a Python file, as X-ARES encoders are written (``my_encoder.py[:Class]``)."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path

import torch

from .contract import REQUIRED_ATTRIBUTES, EncoderContractError


def _weights_file(err: BaseException) -> str | None:
    """The file a failing ``torch.load`` was reading, from its frame in the exception's traceback."""
    tb = err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "load" and Path(code.co_filename).parts[-2:] == ("torch", "serialization.py"):
            source = tb.tb_frame.f_locals.get("f")
            return os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        tb = tb.tb_next
    return None


def error_line(err: BaseException) -> str:
    """An exception as one line (its type and first line); torch.load's refusal of a pickle as the reason it
    gives, with the file it was reading."""
    text = str(err)
    weights = _weights_file(err)
    prefix = f"cannot load weights {weights}: " if weights else ""
    if "WeightsUnpickler error:" in text:  # torch.load(weights_only=True) met something other than tensors
        reason = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        reason = " ".join(reason.split()).split(" Please use", 1)[0].rstrip(".")
        return f"{prefix}torch.load refused the pickled weights (weights_only=True loads tensors, never code): {reason}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return prefix + (f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__)


def _where(err: BaseException, folder: Path) -> str:
    """The deepest line of the encoder's own files (its folder) in an exception's traceback, e.g. 'enc.py, line 7'."""
    if isinstance(err, SyntaxError) and err.filename and err.lineno:
        return f"{Path(err.filename).name}, line {err.lineno}"
    ours = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).parent == folder]
    return f"{Path(ours[-1].filename).name}, line {ours[-1].lineno}" if ours else "outside the encoder's files"


def _failure(path: Path, doing: str, err: BaseException) -> EncoderContractError:
    """One line naming the encoder file, what it was doing, where in the encoder's files, and what went wrong."""
    what = f"syntax error: {err.msg}" if isinstance(err, SyntaxError) else error_line(err)
    return EncoderContractError(f"encoder file {path}: {doing} failed ({_where(err, path.parent)}): {what}")


def load_module_file(spec: str) -> torch.nn.Module:
    """Import ``path.py`` and instantiate its encoder class (named after ``:``, or the only one found).

    A file that does not import (syntax error, missing module, an exception at import) or a constructor that
    raises (weights that refuse to load...) gives an :class:`EncoderContractError` of one line naming the file,
    the line and what went wrong."""
    path_text, _, class_name = spec.partition(":") if spec.count(":") == 1 and not spec.endswith(".py") else (spec, "", "")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"encoder file {path} does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    module_name = f"xares_hf_user_encoder_{digest[:12]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.parent))  # X-ARES encoders import their sibling files
    try:
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise _failure(path, "importing it", err) from err
    finally:
        sys.path.remove(str(path.parent))
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, torch.nn.Module) and obj.__module__ == module_name
    ]
    if class_name:
        chosen = [c for c in classes if c.__name__ == class_name]
        if not chosen:
            raise EncoderContractError(
                f"encoder file {path}: no torch.nn.Module class named '{class_name}' (found {[c.__name__ for c in classes]})"
            )
    else:
        chosen = [c for c in classes if _declares_contract(c)] or classes
        if len(chosen) != 1:
            raise EncoderContractError(
                f"encoder file {path}: found {len(chosen)} candidate encoder classes {[c.__name__ for c in chosen]}; "
                f"name one as {path.name}:ClassName"
            )
    try:
        encoder = chosen[0]()
    except Exception as err:
        raise _failure(path, f"{chosen[0].__name__}()", err) from err
    encoder.identity = {"id": f"{path.name}:{chosen[0].__name__}", "revision": f"file-sha256:{digest[:16]}"}
    return encoder


def _declares_contract(cls: type) -> bool:
    """Whether a class sets the contract's attributes (as class attributes or in its source)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = ""
    return all(hasattr(cls, a) or a in source for a in REQUIRED_ATTRIBUTES)

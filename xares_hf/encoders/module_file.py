"""Load an encoder class from a Python file, as X-ARES encoders are written (``my_encoder.py[:Class]``)."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path

import torch

from .contract import REQUIRED_ATTRIBUTES, EncoderContractError


def load_module_file(spec: str) -> torch.nn.Module:
    """Import ``path.py`` and instantiate its encoder class (named after ``:``, or the only one found)."""
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
            raise EncoderContractError(f"{path}: no torch.nn.Module class named '{class_name}' (found {[c.__name__ for c in classes]})")
    else:
        chosen = [c for c in classes if _declares_contract(c)] or classes
        if len(chosen) != 1:
            raise EncoderContractError(
                f"{path}: found {len(chosen)} candidate encoder classes {[c.__name__ for c in chosen]}; "
                f"name one as {path.name}:ClassName"
            )
    encoder = chosen[0]()
    encoder.identity = {"id": f"{path.name}:{chosen[0].__name__}", "revision": f"file-sha256:{digest[:16]}"}
    return encoder


def _declares_contract(cls: type) -> bool:
    """Whether a class sets the contract's attributes (as class attributes or in its source)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = ""
    return all(hasattr(cls, a) or a in source for a in REQUIRED_ATTRIBUTES)

"""How to time a stage of the encoding data path, for ``stage_costs.py`` (and through it ``gpu_throughput.py``).

Timers that wait for the device's queued work, the fastest of repeated runs, the recording and replaying of a model's
calls (its raw forward without what wraps it), the encoder's input builders and ``SplitEncoder.ensure_cached`` timed
in place, and the moving of a call's tensors between host and device.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from xares_hf import encoding
from xares_hf.encoders import TransformersEncoder


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Wait for the device's queued work (a no-op on a CPU), so a timer measures the work, not its launch."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    """Seconds of ``fn()`` with the device's work waited for before and after, and its result."""
    sync()
    start = time.perf_counter()
    value = fn()
    sync()
    return time.perf_counter() - start, value


def fastest(repeats: int, run: Callable[[], tuple[float, Any]]) -> tuple[float, Any]:
    """The fastest of ``repeats`` runs of a timed stage, with its result."""
    return min((run() for _ in range(repeats)), key=lambda result: result[0])


@contextmanager
def model_calls(model: torch.nn.Module) -> Iterator[list[tuple[tuple, dict, dict]]]:
    """Record every call of ``model``: its arguments (the inputs as the encoder built them, on the device) and the
    per-instance ``forward`` overrides active then (e.g. a batched group norm's per-clip statistics), to replay the
    raw forward without the feature extraction and copies around it."""
    calls: list[tuple[tuple, dict, dict]] = []

    def hook(_: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        calls.append((args, dict(kwargs), {m: m.__dict__["forward"] for m in model.modules() if "forward" in m.__dict__}))

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def replay(model: torch.nn.Module, call: tuple[tuple, dict, dict]) -> Any:
    """One recorded call of ``model`` again, with the ``forward`` overrides it had (put back as they are after)."""
    args, kwargs, overrides = call
    previous = {m: m.__dict__.get("forward") for m, fn in overrides.items() if m.__dict__.get("forward") is not fn}
    for module in previous:
        module.forward = overrides[module]
    try:
        return model(*args, **kwargs)
    finally:
        for module, fn in previous.items():
            if fn is None:
                del module.forward
            else:
                module.forward = fn


class _Timer:
    """Calls ``inner``, adding up the seconds spent in it (device work waited for); other attributes are inner's."""

    def __init__(self, inner: Any, sync: Callable[[], None]) -> None:
        self.inner, self.sync, self.seconds = inner, sync, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        seconds, value = timed(lambda: self.inner(*args, **kwargs), self.sync)
        self.seconds += seconds
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextmanager
def timed_inputs(encoder: TransformersEncoder, sync: Callable[[], None]) -> Iterator[list[_Timer]]:
    """The encoder's input builders timed in the block: its HF feature extractor and, where the encoder has one,
    its on-device stand-in (``_device_inputs``); a builder the encoder does not call adds 0 s."""
    originals = {n: getattr(encoder, n) for n in ("feature_extractor", "_device_inputs") if getattr(encoder, n, None) is not None}
    timers = {n: _Timer(inner, sync) for n, inner in originals.items()}
    for name, timer in timers.items():
        setattr(encoder, name, timer)
    try:
        yield list(timers.values())
    finally:
        for name, inner in originals.items():
            setattr(encoder, name, inner)


def moved(args: tuple, kwargs: dict, fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[tuple, dict]:
    """A call's arguments with ``fn`` (a copy to a device) applied to each tensor among them."""
    move = lambda v: fn(v) if isinstance(v, torch.Tensor) else v  # noqa: E731
    return tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()}


def first_tensor(out: Any) -> torch.Tensor:
    """The frames tensor of a model's output (``last_hidden_state``, or its first element)."""
    if isinstance(out, torch.Tensor):
        return out
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


@contextmanager
def timed_ensure_cached() -> Iterator[list[dict]]:
    """Each ``SplitEncoder.ensure_cached`` call in the block: its split, seconds and the split encoder (its keys)."""
    original = encoding.SplitEncoder.ensure_cached
    calls: list[dict] = []

    def ensure_cached(self: encoding.SplitEncoder) -> bool:
        start = time.perf_counter()
        try:
            return original(self)
        finally:
            calls.append({"split": self.split, "seconds": time.perf_counter() - start, "split_encoder": self})

    encoding.SplitEncoder.ensure_cached = ensure_cached
    try:
        yield calls
    finally:
        encoding.SplitEncoder.ensure_cached = original

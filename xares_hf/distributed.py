"""Running under ``accelerate launch``: who this process is, how work is split, and how results meet.

One process (no launcher) behaves exactly as before: rank 0 of 1, no barriers, no gathering.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")


def _cpu_only() -> bool:
    """CPU processes (gloo) when asked (``ACCELERATE_USE_CPU``) or when there is no GPU to give them."""
    import os

    import torch

    return os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()


@lru_cache(maxsize=None)
def accelerator():
    """The process's ``Accelerator``: device placement and DDP, as ``accelerate launch`` configured them."""
    from accelerate import Accelerator

    return Accelerator(cpu=_cpu_only())


def device():
    """The device Accelerate assigns to this process (a GPU per process under ``--multi_gpu``, else CPU)."""
    return accelerator().device


def autocast(device_, mixed_precision: str | None):
    """Mixed precision for encoding: ``bf16`` or ``fp16`` autocast on the encoder's device, or nothing."""
    import contextlib

    import torch

    if mixed_precision in (None, "no"):
        return contextlib.nullcontext()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if mixed_precision not in dtypes:
        raise ValueError(f"mixed_precision must be 'bf16', 'fp16' or 'no', got {mixed_precision!r}")
    if mixed_precision == "fp16" and torch.device(device_).type == "cpu":
        raise ValueError("fp16 autocast needs a GPU; use bf16 on CPU")
    return torch.autocast(device_type=torch.device(device_).type, dtype=dtypes[mixed_precision])


def state():
    from accelerate import PartialState

    return PartialState(cpu=_cpu_only())


def world_size() -> int:
    return state().num_processes


def rank() -> int:
    return state().process_index


def is_main() -> bool:
    return state().is_main_process


def barrier() -> None:
    if world_size() > 1:
        state().wait_for_everyone()


def my_share(items: list[T]) -> list[T]:
    """This process's items of a list split round-robin; every item goes to exactly one process."""
    return items[rank() :: world_size()]


def gather(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (a list of one without a launcher)."""
    if world_size() == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def broadcast(obj: T) -> T:
    """The main process's ``obj`` on every process."""
    if world_size() == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj])[0]


def all_sum(tensor):
    """The element-wise sum of ``tensor`` over processes (itself without a launcher)."""
    if world_size() == 1:
        return tensor
    from accelerate.utils import reduce

    return reduce(tensor, reduction="sum")


def gather_with_grad(tensor, sizes: list[int]):
    """Every process's ``tensor`` (``sizes[r]`` rows on process r) concatenated in rank order, with gradients
    flowing back to each process's own rows (for losses over the whole global batch, e.g. contrastive ones)."""
    if world_size() == 1:
        return tensor
    import torch
    from torch.distributed.nn.functional import all_gather

    width = max(sizes)
    padded = torch.cat([tensor, tensor.new_zeros(width - len(tensor), *tensor.shape[1:])]) if len(tensor) < width else tensor
    return torch.cat([part[:n] for part, n in zip(all_gather(padded), sizes)])


def predict_all(predict, items):
    """``predict`` over ``items`` (an array or list), each process doing its round-robin share, gathered
    back into the original order on every process."""
    world = world_size()
    if world == 1:
        return predict(items)
    shares = gather(predict(items[rank() :: world]))
    if isinstance(shares[0], list):
        merged = [None] * len(items)
        for r, share in enumerate(shares):
            merged[r::world] = share
        return merged
    import numpy as np

    merged = np.empty((len(items), *np.shape(shares[0])[1:]), dtype=np.asarray(shares[0]).dtype)
    for r, share in enumerate(shares):
        merged[r::world] = share
    return merged

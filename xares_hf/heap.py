"""Keep the C heap from growing while clips of varying lengths are encoded and probes train on them.

Every training step of a frame or ASR head allocates tensors whose sizes follow the batch's clip lengths (a few MB
each on a CPU). glibc's malloc raises its mmap threshold after each such tensor is freed (up to 32 MB), so the next
ones come from the heap, whose free holes rarely fit the next batch's sizes: the process's anonymous memory then
grows with every epoch although nothing is alive (measured: a CTC head on 143 LibriSpeech-like clips went from
0.8 GB to 2.0 GB over 10 epochs). Fixing the threshold at 1 MiB serves those tensors with mmap and returns them
to the system when freed; the resident set stays at what is alive (1.0 GB there) for ~15 % more CPU time per
step. ``MALLOC_MMAP_THRESHOLD_`` set by the user, or another allocator preloaded (jemalloc, tcmalloc), is left
alone; so is any C library that is not glibc. Set when a task's encoding starts and when a head's training
starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

MMAP_THRESHOLD = 1 << 20  # bytes; allocations at least this big are mmapped and unmapped when freed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
_done = False


def bound_heap_growth() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` once per process; return whether it is set."""
    global _done
    if _done:
        return True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or any(
        name in os.environ.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc")
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        logger.debug("mallopt(M_MMAP_THRESHOLD) refused; the heap may grow while probes train")
        return False
    _done = True
    return True

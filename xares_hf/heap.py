"""Keep the C heap from growing while clips of varying lengths are encoded and probes train on them.

Decoded clips and every training step of a frame or ASR head allocate arrays whose sizes follow the clips' lengths
(hundreds of kB to a few MB on a CPU). glibc's malloc raises its mmap threshold each time such a block is freed
(from 128 kB up to 32 MB), so later ones come from the heap, whose free holes rarely fit the next sizes: anonymous
memory then grows with every clip and every epoch although nothing is alive. Measured: a CTC head on 143
LibriSpeech-like clips grew from 0.8 to 2.0 GB over 10 epochs; encoding 1000 DESED-like 10 s clips grew by
0.55 MB per clip (946 MB after the shard, 403 MB with the threshold held). Holding the threshold at glibc's own
starting value, 128 kB, serves those blocks with mmap and returns them to the system when freed, at the cost of
page faults (CTC training: up to ~20 % more CPU time per step here). ``MALLOC_MMAP_THRESHOLD_`` set by the user, or
another allocator preloaded (jemalloc, tcmalloc), is left alone; so is any C library that is not glibc. Set when a
task starts and when a head's training starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

MMAP_THRESHOLD = 128 << 10  # bytes; blocks at least this big are mmapped and unmapped when freed
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

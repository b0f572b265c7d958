"""heap.py: glibc's heap no longer keeps freed training tensors resident."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    from xares_hf.heap import bound_heap_growth

    def anon_mb():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

    bounded = bound_heap_growth() if sys.argv[1] == "bound" else False
    before = anon_mb()
    first = np.ones(24 << 20, np.uint8)  # freed: glibc would raise its mmap threshold to 24 MB
    del first
    second = np.ones(20 << 20, np.uint8)  # now below glibc's raised threshold: from the heap, kept when freed
    del second
    print(bounded, anon_mb() - before)
""")


def _run(mode: str, **env: str) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **env})
    bounded, kept = out.stdout.split()
    return bounded == "True", float(kept)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc are Linux's")
def test_freed_tensors_go_back_to_the_system():
    assert _run("default") == (False, pytest.approx(20, abs=2))  # glibc's own behaviour: 20 MB stay resident
    bounded, kept = _run("bound")
    assert bounded and kept < 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc are Linux's")
def test_a_users_own_setting_is_left_alone():
    bounded, kept = _run("bound", MALLOC_MMAP_THRESHOLD_="31457280", MALLOC_TRIM_THRESHOLD_="134217728")
    assert not bounded and kept > 18  # the user's 30 MB threshold honoured: both arrays came from the heap


def test_training_a_probe_bounds_the_heap():
    code = ("import numpy as np; from xares_hf import heap; from xares_hf.probes import linear;"
            "x = np.random.default_rng(0).standard_normal((40, 4)).astype('float32'); y = np.arange(40) % 2;"
            "assert not heap._done; linear.train_linear_probe((x, y), (x, y), x, 2, lambda p, t: 0.0, epochs=1,"
            "learning_rate=1e-3, batch_size=8); print(heap._done)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"

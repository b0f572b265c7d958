"""Every probe head trains data-parallel: a two-process gloo run under ``accelerate launch`` learns what the
single-process run learns (up to float summation order), each process computing the loss of half the items."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import save_tiny_qwen2

WORKER = Path(__file__).parent / "distributed_worker.py"
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
HEADS = ("linear", "frame", "retrieval", "ctc", "llm")
BATCHES = {"linear": (7, 4), "frame": (5, 4), "retrieval": (13, 3), "ctc": (7, 3), "llm": (3, 2)}  # batch size, epochs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import test_probe_asr

    root = tmp_path_factory.mktemp("heads")
    decoder = save_tiny_qwen2(root / "qwen2", test_probe_asr.splits(sizes=(11, 4, 3))[0][1])
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    one = subprocess.run([sys.executable, str(WORKER), str(decoder), str(root / "one.json")], capture_output=True,
                         text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-4000:]
    two = subprocess.run([ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
                          str(WORKER), str(decoder), str(root / "two.json")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert two.returncode == 0, two.stderr[-4000:]
    return {"one": json.loads((root / "one.json").read_text()), "two": json.loads((root / "two.json").read_text()),
            "log": two.stdout + two.stderr}


@pytest.mark.parametrize("head", HEADS)
def test_two_processes_learn_what_one_learns(runs, head):
    one, two = runs["one"][head], runs["two"][head]
    assert two["best_epoch"] == one["best_epoch"]
    np.testing.assert_allclose(two["valid"], one["valid"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4, atol=1e-5)
    if head in ("ctc", "llm"):
        assert two["test"] == one["test"]
    else:
        np.testing.assert_allclose(np.concatenate([np.ravel(x) for x in two["test"]]),
                                   np.concatenate([np.ravel(x) for x in one["test"]]), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("head", HEADS)
def test_each_process_computes_half_of_the_items(runs, head):
    single, (first, second) = runs["one"][head]["items_per_process"], runs["two"][head]["items_per_process"]
    batch, epochs = BATCHES[head]
    items = single[0] // epochs
    batches = [min(batch, items - start) for start in range(0, items, batch)]
    # each global batch split round-robin: process 0 takes its items 0, 2, 4, ..., process 1 the others
    assert (first, second) == (epochs * sum((n + 1) // 2 for n in batches), epochs * sum(n // 2 for n in batches))
    assert f"{head}: process 1 of 2 computed the loss of {second} of" in runs["log"]

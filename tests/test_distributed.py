"""Real two-process runs on CPU (gloo) under `accelerate launch`: same scores, every clip encoded once, one file."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import tone, write_card
from xares_hf import evaluate
from xares_hf.data import write_shards
from xares_hf.embedding_cache import EmbeddingCache

ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tiny_suite, tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    # a task with 3 shards per split: more shards than processes, and not divisible by them
    for split, n in (("train", 20), ("valid", 10), ("test", 10)):
        samples = [(f"{split}{i}", tone(300 if i % 2 else 1500, 0.4 + 0.05 * (i % 3)), 16_000, {"label": "low" if i % 2 else "high"}) for i in range(n)]
        write_shards(samples, tiny_suite / "uneven" / f"{split}-%03d.tar", max_count=(n + 2) // 3)
    uneven = write_card(root / "uneven.yaml", name="uneven", probe={"epochs": 6, "learning_rate": 0.01, "batch_size": 5})
    tasks = [str(tiny_suite / "cards"), str(uneven)]
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "xares_hf", "evaluate", "log-mel",
               "--tasks", *tasks, "--data-dir", str(tiny_suite), "--cache-dir", str(root / "cache2"), "--output-dir", str(root / "out2")]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert launched.returncode == 0, launched.stderr[-4000:]
    single = evaluate("log-mel", tasks=tasks, data_dir=tiny_suite, cache_dir=root / "cache1", output_dir=root / "out1")
    files = list((root / "out2").rglob("results.json"))
    return {"root": root, "stdout": launched.stdout, "files": files, "single": single,
            "double": json.loads(files[0].read_text()) if files else None}


def test_two_processes_really_ran_and_wrote_one_file(runs):
    assert len(runs["files"]) == 1
    assert runs["double"]["run"]["world_size"] == 2
    assert runs["single"].run["world_size"] == 1
    assert runs["stdout"].count("results written under") == 1


def test_scores_match_the_single_process_run(runs):
    double = {t["name"]: t for t in runs["double"]["tasks"]}
    for task in runs["single"].tasks:
        other = double[task.name]
        # DDP averages the same global batches' gradients: equal up to float summation order; tolerance one clip
        assert abs(other["mlp"] - task.mlp) <= 1 / task.eval_size + 1e-12, task.name
        assert other["knn"] == task.knn, task.name  # kNN is exact


def test_every_clip_is_encoded_exactly_once(runs):
    one, two = EmbeddingCache(runs["root"] / "cache1"), EmbeddingCache(runs["root"] / "cache2")
    entries = sorted(p for p in (runs["root"] / "cache2").rglob("*.safetensors"))
    assert entries and not [p for p in entries if ".part" in p.name]
    for path in entries:
        task, key = path.parent.name, path.stem
        merged = two.load(task, key)
        log = two.read_log(task, key)
        assert len(log["encoded_per_process"]) == 2 and sum(log["encoded_per_process"]) == len(merged)
        assert len(set(merged.keys)) == len(merged.keys)
        reference = one.load(task, key)  # same fingerprint: same encoder, task and files
        assert merged.keys == reference.keys  # the split's order is restored
        # a plain module encodes zero-padded batches; other batch-mates change a clip's last frames a little
        assert np.abs(merged.pooled.numpy() - reference.pooled.numpy()).mean() < 0.01 * np.abs(reference.pooled.numpy()).mean()
    uneven_logs = [two.read_log("uneven", p.stem) for p in (runs["root"] / "cache2" / "uneven").glob("*.safetensors")]
    assert any(log["encoded_per_process"][0] != log["encoded_per_process"][1] for log in uneven_logs)

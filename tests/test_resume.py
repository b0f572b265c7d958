"""Crash safety: runs killed with SIGKILL at several points resume to the same scores; two runs share a cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xares_hf.embedding_cache import EmbeddingCache

from helpers import tone, write_card
from xares_hf.data import write_shards
from zenodo_server import FakeZenodo

RECORD = "777"
SPLITS = ("train", "valid", "test")
SHARDS_PER_SPLIT = 3

SLOW_ENCODER = '''
import os, time
from xares_hf.encoders import LogMelEncoder


class SlowLogMel(LogMelEncoder):
    """The log-mel baseline, slowed down, logging every batch it encodes (pid, clips, samples)."""

    def forward(self, audio):
        log = os.environ.get("SLOW_ENCODER_LOG")
        if log:
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()} {audio.shape[0]} {audio.shape[1]}\\n")
        time.sleep(float(os.environ.get("SLOW_ENCODER_SLEEP", "0.15")))
        return super().forward(audio)
'''


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """A task of 3 splits x 3 shards served by a Zenodo stand-in, a slow encoder, and an uninterrupted run's scores."""
    root = tmp_path_factory.mktemp("resume")
    served = root / "served"
    for split in SPLITS:
        items = [(f"{split}{i:02d}", tone(300 if i % 2 else 1500, 0.4 + 0.05 * (i % 3)), 16_000,
                  {"label": "low" if i % 2 else "high"}) for i in range(12)]
        write_shards(items, served / f"{split}-%03d.tar", max_count=4)
    card = write_card(root / "crashy.yaml", name="crashy", probe={"epochs": 400, "learning_rate": 0.01, "batch_size": 4,
                                                                  "batch_size_encode": 2},
                      data={"splits": {s: f"{s}-*.tar" for s in SPLITS}, "zenodo_id": RECORD})
    encoder = root / "slow_encoder.py"
    encoder.write_text(SLOW_ENCODER)
    with FakeZenodo() as server:
        server.add_folder(RECORD, served)
        server.seconds_per_kib = 0.004
        reference = _run(root / "reference", card, encoder, server.url)
        assert reference.returncode == 0, reference.stderr[-3000:]
        yield {"root": root, "card": card, "encoder": encoder, "server": server, "served": served,
               "reference": _scores(root / "reference")}


def _command(workdir: Path, card: Path, encoder: Path) -> list[str]:
    return [sys.executable, "-m", "xares_hf", "evaluate", f"{encoder}:SlowLogMel", "--tasks", str(card),
            "--data-dir", str(workdir / "data"), "--cache-dir", str(workdir / "cache"), "--output-dir", str(workdir / "out")]


def _env(url: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "XARES_HF_OFFLINE")}
    return {**env, "XARES_HF_ZENODO_URL": url, "OMP_NUM_THREADS": "1", **extra}


def _run(workdir: Path, card: Path, encoder: Path, url: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(workdir, card, encoder), capture_output=True, text=True, env=_env(url, **extra), timeout=600)


def _scores(workdir: Path) -> dict:
    data = json.loads(next((workdir / "out").rglob("results.json")).read_text())
    return {t["name"]: (t["mlp"], t["knn"], t["eval_size"]) for t in data["tasks"]}


def _entries(workdir: Path) -> list[Path]:
    return sorted((workdir / "cache" / "crashy").glob("*.safetensors")) if (workdir / "cache" / "crashy").is_dir() else []


TRIGGERS = {
    # kill while a shard is half downloaded
    "download": lambda w: any((w / "data" / "crashy").glob("*.part")) if (w / "data" / "crashy").is_dir() else False,
    # kill with some shards of the task encoded and others not
    "encoding": lambda w: 2 <= len(_entries(w)) < len(SPLITS) * SHARDS_PER_SPLIT,
    # kill while the probe trains: every shard encoded, no result yet
    "probe": lambda w: len(_entries(w)) == len(SPLITS) * SHARDS_PER_SPLIT,
    # kill as the task's result is stored and results.json is written
    "results": lambda w: (w / "cache" / "crashy" / "results").is_dir(),
}


def _assert_nothing_partial_under_a_final_name(workdir: Path, served: Path) -> None:
    for tar in (workdir / "data" / "crashy").glob("*.tar"):
        assert tar.read_bytes() == (served / tar.name).read_bytes(), tar
    for entry in _entries(workdir):
        split = EmbeddingCache(workdir / "cache").load("crashy", entry.stem)  # None if it fails its checksum
        assert split is not None and len(split.keys) == len(split.pooled) > 0, entry
    for result in (workdir / "cache" / "crashy" / "results").glob("*.json"):
        json.loads(result.read_text())
    for result in (workdir / "out").rglob("results.json"):
        json.loads(result.read_text())


@pytest.mark.parametrize("point", list(TRIGGERS))
def test_killed_run_resumes_to_the_same_scores(material, point, tmp_path):
    workdir = tmp_path / point
    process = subprocess.Popen(_command(workdir, material["card"], material["encoder"]), env=_env(material["server"].url),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not TRIGGERS[point](workdir):
        assert process.poll() is None, f"the run ended before the '{point}' point: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"never reached the '{point}' point"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    # at the last point the run may have just finished when the signal arrived
    assert process.returncode == -signal.SIGKILL or (point == "results" and process.returncode == 0)
    _assert_nothing_partial_under_a_final_name(workdir, material["served"])
    before = {p.name: p.stat().st_mtime_ns for p in _entries(workdir)}

    resumed = _run(workdir, material["card"], material["encoder"], material["server"].url)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _scores(workdir) == material["reference"]
    after = {p.name: p.stat().st_mtime_ns for p in _entries(workdir)}
    assert all(after[name] == mtime for name, mtime in before.items())  # finished shards were not encoded again
    assert len(after) == len(SPLITS) * SHARDS_PER_SPLIT
    _assert_nothing_partial_under_a_final_name(workdir, material["served"])
    assert not [p for p in workdir.rglob("*") if ".tmp" in p.name or p.name.endswith(".part")]


def test_two_runs_on_one_cache_encode_each_shard_once_and_agree(material, tmp_path):
    workdir = tmp_path / "shared"
    log = tmp_path / "forward.log"
    first = _run(workdir, material["card"], material["encoder"], material["server"].url)  # data in place first
    assert first.returncode == 0
    for entry in [*_entries(workdir), *(workdir / "cache" / "crashy" / "results").glob("*.json")]:
        entry.unlink()
    env = _env(material["server"].url, SLOW_ENCODER_LOG=str(log), SLOW_ENCODER_SLEEP="0.25")
    runs = [subprocess.Popen(_command(workdir, material["card"], material["encoder"]) + ["--output-dir", str(tmp_path / f"out{i}")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [o[1][-2000:] for o in outputs]
    scores = [json.loads(next((tmp_path / f"out{i}").rglob("results.json")).read_text())["tasks"][0] for i in range(2)]
    assert (scores[0]["mlp"], scores[0]["knn"]) == (scores[1]["mlp"], scores[1]["knn"]) == material["reference"]["crashy"][:2]
    # every data clip went through the encoder once, across both runs (check_encoder's 1 s / 2 s noise aside)
    batches = [line.split() for line in log.read_text().splitlines()]
    data_clips = sum(int(n) for _, n, samples in batches if int(samples) < 16_000)
    assert data_clips == len(SPLITS) * 12
    assert "waiting for it" in outputs[0][1] + outputs[1][1]  # the second run said whose lock it waited for
    assert "pid" in outputs[0][1] + outputs[1][1]


def test_a_temporary_file_left_by_a_writer_killed_mid_write_is_removed_by_the_next_save(tmp_path):
    from xares_hf.embedding_cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    path = cache.result_path("toy", "k1")
    path.parent.mkdir(parents=True)
    orphan = path.parent / f".{path.name}.abc123.tmp"  # what SIGKILL between writing and renaming leaves
    orphan.write_text('{"half": ')
    cache.save_result("toy", "k1", {"mlp": 0.5})
    assert not orphan.exists() and cache.load_result("toy", "k1") == {"mlp": 0.5}

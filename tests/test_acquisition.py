"""Zenodo acquisition against a local HTTP server, and the Hub dataset layout through datasets."""

import io
import subprocess
import sys
import zipfile

import pytest

from helpers import tone, write_card
from xares_hf import evaluate
from xares_hf.data import DataError, DownloadError, ensure_task_data, write_shards
from xares_hf.data.hub_publish import dataset_card
from xares_hf.data.zenodo import download_file, record_files
from xares_hf.tasks import load_task
from zenodo_server import FakeZenodo

FOLDS = {"folds": [1, 2], "fold_pattern": "wds-audio-fold-{fold}-*.tar", "zenodo_id": "4242"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A real two-fold task: fold tars of tones (low/high), as X-ARES' Zenodo records hold them."""
    folder = tmp_path_factory.mktemp("source")
    for fold in (1, 2):
        samples = [(f"f{fold}_{i}", tone(200 if i % 2 else 2000, 0.5), 16_000, {"label": "low" if i % 2 else "high"}) for i in range(12)]
        write_shards(samples, folder / f"wds-audio-fold-{fold}-%06d.tar")
    return folder


@pytest.fixture
def zenodo(monkeypatch, shards):
    with FakeZenodo() as server:
        server.add_folder("4242", shards)
        monkeypatch.setenv("XARES_HF_ZENODO_URL", server.url)
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "XARES_HF_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        yield server


def _card(tmp_path, **data):
    return load_task(write_card(tmp_path / "toy.yaml", data={**FOLDS, **data}, probe={"epochs": 5, "learning_rate": 0.01, "batch_size": 8}))


def test_first_use_downloads_verifies_and_evaluates(zenodo, shards, tmp_path):
    card = _card(tmp_path)
    files = ensure_task_data(card, tmp_path / "data")
    assert sorted(files) == ["fold1", "fold2"]
    for name, data in zenodo.records["4242"].items():
        assert (tmp_path / "data" / "toy" / name).read_bytes() == data
    assert not list((tmp_path / "data" / "toy").glob("*.part"))
    before = len(zenodo.requests)
    results = evaluate("log-mel", tasks=[card], data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", output_dir=None)
    assert len(zenodo.requests) == before  # already there: no second download
    assert results["toy"].mlp >= 0.9


def test_a_cut_connection_resumes_with_a_range_request(zenodo, tmp_path):
    remote = record_files("4242")[0]
    zenodo.cut[remote.key] = remote.size // 2
    target = download_file(remote, tmp_path / remote.key)
    assert target.read_bytes() == zenodo.records["4242"][remote.key]
    ranges = [r for path, r in zenodo.requests if path.endswith(remote.key)]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= remote.size // 2  # kept what arrived before the cut


def test_a_checksum_mismatch_leaves_nothing_under_the_final_name(zenodo, tmp_path):
    key = sorted(zenodo.records["4242"])[0]
    zenodo.bad_checksum.add(key)
    with pytest.raises(DownloadError, match=f"{key}: checksum mismatch"):
        ensure_task_data(_card(tmp_path), tmp_path / "data")
    assert not (tmp_path / "data" / "toy" / key).exists()
    assert not list((tmp_path / "data" / "toy").glob("*.part"))


def test_429_then_success(zenodo, tmp_path):
    zenodo.status["/api/records/4242"] = [429, 503]
    files = ensure_task_data(_card(tmp_path), tmp_path / "data")
    assert len(files) == 2
    assert [p for p, _ in zenodo.requests[:3]] == ["/api/records/4242"] * 3


def test_zip_archives_are_unpacked(zenodo, shards, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for p in sorted(shards.iterdir()):
            z.write(p, f"nested/{p.name}")
    zenodo.records["4243"] = {"toy.zip": buffer.getvalue()}
    card = _card(tmp_path, zenodo_id="4243")
    files = ensure_task_data(card, tmp_path / "data")
    assert {f.rsplit("/", 1)[-1] for fs in files.values() for f in fs} == {p.name for p in shards.iterdir()}
    assert not (tmp_path / "data" / "toy" / "toy.zip").exists()


def test_offline_and_private_never_download(zenodo, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"offline: run `xares-hf download toy`.*Zenodo record 4242"):
        ensure_task_data(_card(tmp_path), tmp_path / "data")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    private = load_task(write_card(tmp_path / "p.yaml", name="secret", private=True, data={**FOLDS, "zenodo_id": None}))
    with pytest.raises(DataError, match=r"no public download: place its WebDataset shards as .*secret/wds-audio-fold-1-\*\.tar"):
        ensure_task_data(private, tmp_path / "data")
    assert zenodo.requests == []


def test_download_command(zenodo, tmp_path):
    card = write_card(tmp_path / "toy.yaml", data=FOLDS)
    out = subprocess.run([sys.executable, "-m", "xares_hf.cli", "download", str(card), "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, env={**__import__("os").environ}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "toy: 2 shards in 2 splits" in out.stdout


@pytest.fixture
def hub_folder(tmp_path, shards):
    """A local folder laid out as a Hub dataset repo: <task>/<shards> and a dataset card with configs."""
    import shutil

    card = _card(tmp_path)
    repo = tmp_path / "repo"
    shutil.copytree(shards, repo / "toy")
    (repo / "README.md").write_text(dataset_card([card]))
    return card, repo


def test_hub_layout_loads_through_datasets_with_explicit_splits(hub_folder, tmp_path):
    import datasets

    card, repo = hub_folder
    fold1 = datasets.load_dataset(str(repo), "toy", split="fold1", streaming=True)
    assert sorted(row["__key__"] for row in fold1) == sorted(f"f1_{i}" for i in range(12))
    results = evaluate("log-mel", tasks=[card], data_dir=repo, cache_dir=tmp_path / "cache", output_dir=None)
    assert results["toy"].mlp >= 0.9 and sorted(results["toy"].folds) == ["fold1", "fold2"]


def test_hub_layout_without_the_task_config_is_a_clear_error(hub_folder):
    _, repo = hub_folder
    other = load_task("esc50")
    with pytest.raises(DataError, match=r"task 'esc50': the dataset card of .* has no config 'esc50' \(has: toy\)"):
        ensure_task_data(other, repo)


def test_push_data_dry_run_shows_files_and_card(tmp_path, shards):
    import shutil

    shutil.copytree(shards, tmp_path / "data" / "toy")
    card = write_card(tmp_path / "toy.yaml", data=FOLDS)
    out = subprocess.run([sys.executable, "-m", "xares_hf.cli", "push-data", str(card), "--repo", "org/xares-data",
                          "--data-dir", str(tmp_path / "data"), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dataset repo org/xares-data: 2 files + README.md" in out.stdout
    assert "toy/wds-audio-fold-1-000000.tar" in out.stdout
    assert "config_name: toy" in out.stdout and "split: fold2" in out.stdout and "path: toy/wds-audio-fold-2-*.tar" in out.stdout

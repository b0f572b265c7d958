"""Zenodo acquisition against a local HTTP server, and the Hub dataset layout through datasets."""

import dataclasses
import io
import logging
import re
import subprocess
import sys
import tarfile
import threading
import time
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


def test_push_plan_keeps_each_shards_path_inside_the_task_folder(tmp_path, shards):
    """Shards of one name in two subfolders were both planned as <task>/<name>: one would overwrite the other."""
    import shutil

    from xares_hf.data.hub_publish import plan_push

    for sub in ("a", "b"):
        shutil.copytree(shards, tmp_path / "data" / "toy" / sub)
    card = load_task(write_card(tmp_path / "toy.yaml", data={**FOLDS, "fold_pattern": "*/wds-audio-fold-{fold}-*.tar"}))
    remotes = [remote for _, remote in plan_push([card], tmp_path / "data", "org/x").files]
    assert sorted(remotes) == ["toy/a/wds-audio-fold-1-000000.tar", "toy/a/wds-audio-fold-2-000000.tar",
                               "toy/b/wds-audio-fold-1-000000.tar", "toy/b/wds-audio-fold-2-000000.tar"]


# Hostile mirrors and records: nothing lands outside the data folder, every fault names record and file.

def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("key", ["../evil-000000.tar", "/ABS/evil-000000.tar", "sub/evil-000000.tar",
                                 "..\\evil-000000.tar", ".download.lock", "wds-audio-fold-1-000000.tar.part"])
def test_a_file_key_that_leaves_the_data_folder_is_refused(zenodo, tmp_path, key):
    key = key.replace("/ABS", str(tmp_path / "abs"))
    good = sorted(zenodo.records["4242"])
    zenodo.raw_records["4242"] = {"files": [zenodo.entry("4242", good[0], as_key=key), zenodo.entry("4242", good[1])]}
    card, before = _card(tmp_path), _tree(tmp_path)
    with pytest.raises(DownloadError, match=rf"Zenodo record 4242, file key {re.escape(repr(key)[:40])}.*: .*refused"):
        ensure_task_data(card, tmp_path / "data")
    assert set(_tree(tmp_path)) - set(before) <= {"data", "data/toy", "data/toy/.download.lock"}  # nothing else, anywhere
    assert [p for p, _ in zenodo.requests] == ["/api/records/4242"]  # refused before any download


def test_archive_members_with_one_base_name_are_refused(zenodo, tmp_path):
    zenodo.records["4243"] = {"toy.zip": _zip({"a/wds-audio-fold-1-000000.tar": b"one", "b/wds-audio-fold-1-000000.tar": b"two"})}
    with pytest.raises(DownloadError, match=r"toy\.zip.*'b/wds-audio-fold-1-000000\.tar'.*'a/wds-audio-fold-1-000000\.tar'"):
        ensure_task_data(_card(tmp_path, zenodo_id="4243"), tmp_path / "data")
    assert not (tmp_path / "data" / "toy" / "wds-audio-fold-1-000000.tar").exists()


def test_an_archive_member_that_would_overwrite_a_file_of_the_record_is_refused(zenodo, tmp_path):
    record = dict(zenodo.records["4242"])
    record["extra.zip"] = _zip({"WDS-audio-fold-1-000000.tar": b"forged"})
    zenodo.records["4244"] = record
    with pytest.raises(DownloadError, match=r"extra\.zip.*'WDS-audio-fold-1-000000\.tar'.*file key 'wds-audio-fold-1-000000\.tar'"):
        ensure_task_data(_card(tmp_path, zenodo_id="4244"), tmp_path / "data")


def test_a_record_listing_one_key_twice_is_refused(zenodo, tmp_path):
    key = sorted(zenodo.records["4242"])[0]
    zenodo.raw_records["4242"] = {"files": [zenodo.entry("4242", key), zenodo.entry("4242", key)]}
    with pytest.raises(DownloadError, match=rf"Zenodo record 4242 lists the file key '{key}' twice"):
        record_files("4242")


def test_a_link_inside_an_archive_is_refused(zenodo, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        link = tarfile.TarInfo("sub/wds-audio-fold-1-000000.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../real.tar"
        t.addfile(link)
        real = tarfile.TarInfo("real.tar")
        real.size = 3
        t.addfile(real, io.BytesIO(b"abc"))
    zenodo.records["4245"] = {"toy.tar.gz": buffer.getvalue()}
    with pytest.raises(DownloadError, match=r"toy\.tar\.gz: archive member 'sub/wds-audio-fold-1-000000\.tar' is a link"):
        ensure_task_data(_card(tmp_path, zenodo_id="4245"), tmp_path / "data")
    assert not any(p.is_symlink() for p in (tmp_path / "data").rglob("*"))


@pytest.mark.parametrize("change, problem", [
    (lambda e: e.pop("key"), "has no 'key'"), (lambda e: e.pop("size"), "has no 'size'"),
    (lambda e: e.pop("checksum"), "has no 'checksum'"), (lambda e: e.pop("links"), "has no download link"),
    (lambda e: e.update(size="big"), "'size' must be a whole number"), (lambda e: e.update(size=-1), "'size' must be"),
    (lambda e: e.update(checksum="d41d8cd9"), "checksum 'd41d8cd9' is not 'algorithm:hex'"),
    (lambda e: e.update(checksum="crc99:00ff"), "unknown checksum algorithm 'crc99'"),
    (lambda e: e.update(links={"self": "file:///etc/passwd"}), "is not an http"),
    (lambda e: e.update(key=7), "'key' must be a string"),
])
def test_a_record_entry_with_a_bad_field_names_the_record_and_the_entry(zenodo, change, problem):
    entries = [zenodo.entry("4242", key) for key in sorted(zenodo.records["4242"])]
    change(entries[1])
    zenodo.raw_records["4242"] = {"files": entries}
    with pytest.raises(DownloadError, match=rf"Zenodo record 4242, file entry 2( \('wds-audio-fold-2-000000\.tar'\))?: .*{re.escape(problem)}"):
        record_files("4242")


@pytest.mark.parametrize("raw, problem", [(b"<html>busy</html>", "is not JSON"), ([1, 2], "is not a JSON object"),
                                          ({"files": "x"}, "'files' must be a list"), ({"files": [3]}, "file entry 1: must be a JSON object")])
def test_a_record_that_is_not_a_record_is_a_clear_error(zenodo, raw, problem):
    zenodo.raw_records["4242"] = raw
    with pytest.raises(DownloadError, match=rf"Zenodo record 4242.*{re.escape(problem)}"):
        record_files("4242")


def test_an_unknown_hash_algorithm_names_the_file_and_leaves_no_part(zenodo, tmp_path):
    remote = dataclasses.replace(record_files("4242")[0], checksum="crc99:00ff")
    with pytest.raises(DownloadError, match=rf"{remote.key}: unknown checksum algorithm 'crc99'"):
        download_file(remote, tmp_path / remote.key)
    assert list(tmp_path.iterdir()) == []


def test_a_long_retry_after_is_capped_and_announced(zenodo, monkeypatch, caplog):
    monkeypatch.setenv("XARES_HF_MAX_RETRY_WAIT", "0.2")
    zenodo.status["/api/records/4242"] = [503]
    zenodo.retry_after["/api/records/4242"] = "100000"
    done = []
    worker = threading.Thread(target=lambda: done.append(record_files("4242")), daemon=True)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="xares_hf"):
        worker.start()
        worker.join(20)
    assert done and time.monotonic() - started < 10, "slept for the server's Retry-After"
    assert re.search(r"Zenodo record 4242 \(http://127\.0\.0\.1:\d+/api/records/4242\): HTTP 503, the server asks to "
                     r"retry after 100000 s; waiting 0\.2 s \(at most XARES_HF_MAX_RETRY_WAIT=0\.2 s\), retry 1 of 5",
                     caplog.text), caplog.text


@pytest.mark.parametrize("send_length", [True, False])
def test_a_body_longer_than_the_declared_size_is_stopped_and_refused(zenodo, tmp_path, send_length):
    remote = record_files("4242")[0]
    zenodo.extra[remote.key] = 30 << 20
    if not send_length:
        zenodo.no_length.add(remote.key)
    with pytest.raises(DownloadError, match=rf"{remote.key}: the server sends more than the {remote.size} bytes the record declares"):
        download_file(remote, tmp_path / remote.key)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_and_a_missing_record_name_what_was_asked_for(zenodo, tmp_path):
    remote = dataclasses.replace(record_files("4242")[0], url=f"{zenodo.url}/files/4242/gone.tar")
    with pytest.raises(DownloadError, match=rf"file {remote.key} \(http://.*/gone\.tar\): HTTP 404"):
        download_file(remote, tmp_path / remote.key)
    with pytest.raises(DownloadError, match=r"Zenodo record 9999 \(http://.*\): HTTP 404"):
        record_files("9999")


def test_a_task_name_that_leaves_the_data_folder_is_refused_before_anything_is_created(zenodo, tmp_path):
    card = _card(tmp_path).model_copy(update={"name": "../evil"})  # past the card's own check, as code could build it
    with pytest.raises(DataError, match=r"task name '\.\./evil': .*refused"):
        ensure_task_data(card, tmp_path / "data")
    assert not (tmp_path / "evil").exists() and zenodo.requests == []

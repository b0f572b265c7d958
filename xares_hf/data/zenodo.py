"""Fetch a task's shards from its Zenodo record: file list and checksums from the REST API, resumable
downloads (HTTP Range), checksum verification, retries with backoff, and nothing half-written under a
final name.

``$XARES_HF_ZENODO_URL`` points at another server speaking the same API (the tests run one on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm.auto import tqdm

from .shards import DataError

DEFAULT_URL = "https://zenodo.org"
RETRY_STATUS = {429, 500, 502, 503, 504}
CHUNK = 1 << 20  # hashing
NET_CHUNK = 1 << 14  # network reads: what arrived before a cut is kept, to the last 16 KiB


class DownloadError(DataError):
    """A download failed for good (after retries) or its checksum did not match."""


@dataclass(frozen=True)
class RemoteFile:
    key: str
    size: int
    checksum: str  # "md5:<hex>" as Zenodo gives it
    url: str


def offline() -> bool:
    """True when any of the usual offline switches is set."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("XARES_HF_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def base_url() -> str:
    return os.environ.get("XARES_HF_ZENODO_URL", DEFAULT_URL).rstrip("/")


def _request(session: requests.Session, url: str, retries: int, **kwargs) -> requests.Response:
    """GET with retries on 429/5xx and connection errors, honouring Retry-After, with exponential backoff."""
    delay = 1.0
    for attempt in range(retries + 1):
        try:
            response = session.get(url, timeout=60, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            if attempt == retries:
                raise DownloadError(f"cannot reach {url}: {err}") from err
            time.sleep(delay)
            delay = min(delay * 2, 60)
            continue
        if response.status_code in RETRY_STATUS and attempt < retries:
            wait = response.headers.get("Retry-After")
            time.sleep(float(wait) if wait and wait.replace(".", "", 1).isdigit() else delay)
            delay = min(delay * 2, 60)
            response.close()
            continue
        if response.status_code >= 400:
            raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
        return response
    raise DownloadError(f"{url}: gave up after {retries} retries")


def record_files(record_id: str, session: requests.Session | None = None, retries: int = 5) -> list[RemoteFile]:
    """The files of a Zenodo record, from ``/api/records/<id>``."""
    session = session or requests.Session()
    data = _request(session, f"{base_url()}/api/records/{record_id}", retries).json()
    files = []
    for entry in data.get("files", []):
        link = entry.get("links", {}).get("self") or entry.get("links", {}).get("content")
        files.append(RemoteFile(entry["key"], int(entry["size"]), entry["checksum"], link))
    if not files:
        raise DownloadError(f"Zenodo record {record_id} lists no files")
    return files


def _verify(path: Path, checksum: str) -> bool:
    algorithm, _, expected = checksum.partition(":")
    digest = hashlib.new(algorithm or "md5")
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected


def download_file(remote: RemoteFile, target: Path, session: requests.Session | None = None, retries: int = 5) -> Path:
    """Download to ``target`` via ``<target>.part`` (resumed with a Range request); verify; rename into place."""
    session = session or requests.Session()
    if target.is_file() and target.stat().st_size == remote.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        if have < remote.size:
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with _request(session, remote.url, retries, headers=headers, stream=True) as response:
                    mode = "ab" if have and response.status_code == 206 else "wb"
                    done = have if mode == "ab" else 0
                    with part.open(mode) as out, tqdm(total=remote.size, initial=done, unit="B", unit_scale=True,
                                                      desc=f"download {remote.key}", leave=False) as bar:
                        for chunk in response.iter_content(NET_CHUNK):
                            out.write(chunk)
                            bar.update(len(chunk))
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
                if attempt == retries:
                    raise DownloadError(f"download of {remote.key} from {remote.url} kept failing: {err}") from err
                continue  # resume from what arrived
        if part.stat().st_size < remote.size:
            continue
        if not _verify(part, remote.checksum):
            part.unlink()
            raise DownloadError(f"{remote.key}: checksum mismatch (expected {remote.checksum}); the partial file was removed")
        os.replace(part, target)
        return target
    raise DownloadError(f"download of {remote.key} stopped short of {remote.size} bytes after {retries} retries")


def _extract(archive: Path, folder: Path) -> None:
    """Unpack a zip or tar archive into ``folder``: each member written under a temporary name, then renamed."""
    staging = folder / f".extract-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(staging)
    else:
        with tarfile.open(archive) as t:
            t.extractall(staging, filter="data")
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            os.replace(path, folder / path.name)
    shutil.rmtree(staging)


def fetch_record(record_id: str, folder: str | Path, retries: int = 5) -> list[Path]:
    """Every file of a Zenodo record into ``folder``: tar shards as they are, zip/tar.gz archives unpacked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    downloads = folder / ".downloads"
    for remote in record_files(record_id, session, retries):
        if remote.key.endswith((".zip", ".tar.gz", ".tgz")):
            archive = download_file(remote, downloads / remote.key, session, retries)
            _extract(archive, folder)
            archive.unlink()
        else:
            download_file(remote, folder / remote.key, session, retries)
    shutil.rmtree(downloads, ignore_errors=True)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".part") and not p.name.startswith("."))

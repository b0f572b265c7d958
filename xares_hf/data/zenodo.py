"""Fetch a task's shards from its Zenodo record: file list and checksums from the REST API, resumable
downloads (HTTP Range), checksum verification, retries with backoff, and nothing half-written under a
final name.

``$XARES_HF_ZENODO_URL`` points at another server speaking the same API (the tests run one on 127.0.0.1).
What the server says is not trusted: every file key and archive member must be one plain file name
(:func:`xares_hf.paths.child_path`) and no two may land on one file; record entries are checked field by field;
a body may not run past its declared size; ``Retry-After`` is obeyed up to :func:`max_wait` seconds and every
wait is logged. Every error names the record and the file.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import os
import shutil
import tarfile
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import requests
from tqdm.auto import tqdm

from ..paths import child_path
from .shards import DataError

DEFAULT_URL = "https://zenodo.org"
RETRY_STATUS = {429, 500, 502, 503, 504}
CHUNK = 1 << 20  # hashing
NET_CHUNK = 1 << 14  # network reads: what arrived before a cut is kept, to the last 16 KiB
DEFAULT_MAX_WAIT_S = 60.0  # the longest one wait between retries, whatever Retry-After asks; $XARES_HF_MAX_RETRY_WAIT
CHECKSUMS = sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake"))  # fixed-length digests
LOCK_NAME = ".download.lock"

logger = logging.getLogger("xares_hf")


class DownloadError(DataError):
    """A download failed for good (after retries), its checksum did not match, or the server's answer is unusable."""


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


def max_wait() -> float:
    """The longest single wait before a retry: ``$XARES_HF_MAX_RETRY_WAIT`` seconds, default 60."""
    text = os.environ.get("XARES_HF_MAX_RETRY_WAIT", "")
    try:
        value = float(text) if text else DEFAULT_MAX_WAIT_S
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise DownloadError(f"XARES_HF_MAX_RETRY_WAIT={text!r}: must be a number of seconds >= 0")
    return value


def download_lock(folder: Path):
    """The lock held while anything is downloaded or unpacked into ``folder`` (re-entrant within a thread), so
    two runs never write the same ``.part`` file or unpack into the same staging folder."""
    from filelock import FileLock

    return FileLock(str(folder / LOCK_NAME), is_singleton=True)


def _asked_wait(header: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), None when it says nothing usable."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None if math.isnan(seconds) else max(seconds, 0.0)


def _pause(what: str, url: str, reason: str, asked: float | None, backoff: float, attempt: int, retries: int) -> None:
    """Wait before a retry, at most :func:`max_wait`, and say so: which file, which URL, why, how long."""
    cap = max_wait()
    wait = min(backoff if asked is None else asked, cap)
    ask = "" if asked is None else f", the server asks to retry after {asked:g} s"
    capped = f" (at most XARES_HF_MAX_RETRY_WAIT={cap:g} s)" if asked is not None and asked > cap else ""
    logger.warning("%s (%s): %s%s; waiting %s s%s, retry %d of %d", what, url, reason, ask, f"{wait:g}", capped, attempt + 1, retries)
    time.sleep(wait)


def _request(session: requests.Session, url: str, what: str, retries: int, **kwargs) -> requests.Response:
    """GET with retries on 429/5xx and connection errors, honouring Retry-After up to :func:`max_wait`, with
    exponential backoff; errors name ``what`` was fetched (a record, a file) and the URL."""
    delay = 1.0
    for attempt in range(retries + 1):
        try:
            response = session.get(url, timeout=60, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            if attempt == retries:
                raise DownloadError(f"{what} ({url}): cannot reach the server: {err}") from err
            _pause(what, url, f"no connection ({type(err).__name__})", None, delay, attempt, retries)
            delay = min(delay * 2, 60)
            continue
        except requests.RequestException as err:  # a URL requests cannot fetch, too many redirects...
            raise DownloadError(f"{what} ({url}): {err}") from None
        if response.status_code in RETRY_STATUS and attempt < retries:
            response.close()
            _pause(what, url, f"HTTP {response.status_code}", _asked_wait(response.headers.get("Retry-After")), delay, attempt, retries)
            delay = min(delay * 2, 60)
            continue
        if response.status_code >= 400:
            raise DownloadError(f"{what} ({url}): HTTP {response.status_code} {response.reason}")
        return response
    raise DownloadError(f"{what} ({url}): gave up after {retries} retries")


def _hasher(checksum: str, what: str):
    """The hash object and expected hex digest of a ``"algorithm:hex"`` checksum, or DownloadError naming ``what``."""
    algorithm, colon, expected = checksum.partition(":")
    if not colon:
        raise DownloadError(f"{what}: checksum {checksum!r} is not 'algorithm:hex' (as in 'md5:<32 hex digits>')")
    if algorithm.lower() not in CHECKSUMS:
        raise DownloadError(f"{what}: unknown checksum algorithm {algorithm!r} (known: {', '.join(CHECKSUMS)})")
    digest = hashlib.new(algorithm.lower())
    if len(expected) != 2 * digest.digest_size or any(c not in "0123456789abcdefABCDEF" for c in expected):
        raise DownloadError(f"{what}: checksum {checksum!r} is not {2 * digest.digest_size} hex digits of {algorithm}")
    return digest, expected.lower()


def _remote_file(record_id: str, index: int, entry: object) -> RemoteFile:
    """One entry of a record's ``files``, checked field by field."""
    where = f"Zenodo record {record_id}, file entry {index}"
    if not isinstance(entry, dict):
        raise DownloadError(f"{where}: must be a JSON object, got {type(entry).__name__}")
    if isinstance(entry.get("key"), str):
        where += f" ({entry['key']!r})"
    for field in ("key", "size", "checksum"):
        if field not in entry:
            raise DownloadError(f"{where}: has no '{field}'")
    key, size, checksum = entry["key"], entry["size"], entry["checksum"]
    if not isinstance(key, str):
        raise DownloadError(f"{where}: 'key' must be a string, got {type(key).__name__} {key!r:.60}")
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DownloadError(f"{where}: 'size' must be a whole number of bytes >= 0, got {size!r:.60}")
    if not isinstance(checksum, str):
        raise DownloadError(f"{where}: 'checksum' must be a string, got {type(checksum).__name__}")
    _hasher(checksum, where)
    links = entry.get("links") if isinstance(entry.get("links"), dict) else {}
    link = links.get("self") or links.get("content")
    if not link:
        raise DownloadError(f"{where}: has no download link ('links' with 'self' or 'content')")
    if not isinstance(link, str) or urlparse(link).scheme not in ("http", "https") or not urlparse(link).netloc:
        raise DownloadError(f"{where}: the download link {link!r:.100} is not an http(s) URL")
    return RemoteFile(key, size, checksum, link)


def _same_file(name: str) -> str:
    """Names that are one file on some file system (case-insensitive, Unicode-normalising) compare equal."""
    return unicodedata.normalize("NFC", name).casefold()


def record_files(record_id: str, session: requests.Session | None = None, retries: int = 5) -> list[RemoteFile]:
    """The files of a Zenodo record, from ``/api/records/<id>``; an entry that is malformed, or a key listed
    twice, is refused naming the record and the entry."""
    session = session or requests.Session()
    what, url = f"Zenodo record {record_id}", f"{base_url()}/api/records/{quote(str(record_id), safe='')}"
    response = _request(session, url, what, retries)
    try:
        data = response.json()
    except ValueError:
        raise DownloadError(f"{what} ({url}): the answer is not JSON: {response.text[:60]!r}") from None
    if not isinstance(data, dict):
        raise DownloadError(f"{what} ({url}): the answer is not a JSON object, got {type(data).__name__}")
    entries = data.get("files", [])
    if not isinstance(entries, list):
        raise DownloadError(f"{what} ({url}): 'files' must be a list, got {type(entries).__name__}")
    files = [_remote_file(record_id, i, entry) for i, entry in enumerate(entries, 1)]
    if not files:
        raise DownloadError(f"{what} lists no files")
    seen: dict[str, str] = {}
    for remote in files:
        other = seen.setdefault(_same_file(remote.key), remote.key)
        if other is not remote.key:
            raise DownloadError(f"{what} lists the file key {remote.key!r} twice" if other == remote.key else
                                f"{what} lists the file keys {other!r} and {remote.key!r}, one file name once case "
                                "and Unicode form are set aside")
    return files


def _verify(path: Path, checksum: str, what: str) -> bool:
    digest, expected = _hasher(checksum, what)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected


def _receive(response: requests.Response, part: Path, have: int, remote: RemoteFile) -> None:
    """Append (206) or write (200) the body to ``part``, never past ``remote.size``: a longer body is refused."""
    mode = "ab" if have and response.status_code == 206 else "wb"
    done = have if mode == "ab" else 0
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and done + int(length) > remote.size:
        raise DownloadError(f"{remote.key}: the server sends more than the {remote.size} bytes the record declares "
                            f"(Content-Length {length} from byte {done}, {remote.url})")
    with part.open(mode) as out, tqdm(total=remote.size, initial=done, unit="B", unit_scale=True,
                                      desc=f"download {remote.key}", leave=False) as bar:
        for chunk in response.iter_content(NET_CHUNK):
            if done + len(chunk) > remote.size:
                break
            out.write(chunk)
            done += len(chunk)
            bar.update(len(chunk))
        else:
            return
    part.unlink()
    raise DownloadError(f"{remote.key}: the server sends more than the {remote.size} bytes the record declares "
                        f"({remote.url}); the partial file was removed")


def download_file(remote: RemoteFile, target: Path, session: requests.Session | None = None, retries: int = 5) -> Path:
    """Download to ``target`` via ``<target>.part`` (resumed with a Range request); verify; rename into place.

    The ``.part`` name is fixed so that a later run resumes it: callers hold :func:`download_lock` of the folder
    (:func:`fetch_record` does). On a body longer than declared, a bad checksum or an unknown checksum algorithm
    the ``.part`` file is removed and DownloadError names the file."""
    session = session or requests.Session()
    _hasher(remote.checksum, remote.key)  # an unusable checksum is refused before anything is written
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
                with _request(session, remote.url, f"file {remote.key}", retries, headers=headers, stream=True) as response:
                    _receive(response, part, have, remote)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
                if attempt == retries:
                    raise DownloadError(f"download of {remote.key} from {remote.url} kept failing: {err}") from err
                continue  # resume from what arrived
            except requests.RequestException as err:
                part.unlink(missing_ok=True)
                raise DownloadError(f"download of {remote.key} from {remote.url}: {err}") from err
        if part.stat().st_size < remote.size:
            continue
        if not _verify(part, remote.checksum, remote.key):
            part.unlink()
            raise DownloadError(f"{remote.key}: checksum mismatch (expected {remote.checksum}); the partial file was removed")
        os.replace(part, target)
        return target
    raise DownloadError(f"download of {remote.key} stopped short of {remote.size} bytes after {retries} retries")


def _local_name(folder: Path, name: str, what: str) -> Path:
    """``folder / name`` for a name from the server: one plain file name, not one of xares-hf's own bookkeeping
    names (a leading ``.``: the lock, staging folders; a ``.part`` suffix: partial downloads)."""
    path = child_path(folder, name, what, error=DownloadError)
    if name.startswith(".") or name.endswith(".part"):
        raise DownloadError(f"{what} {name!r}: names starting with '.' or ending in '.part' are xares-hf's own "
                            "bookkeeping files; refused")
    return path


def _claim(claimed: dict[str, tuple[str, str]], name: str, source: str) -> None:
    """Record that ``source`` writes ``name`` into the task folder; refuse a second writer of one file."""
    other_name, other = claimed.setdefault(_same_file(name), (name, source))
    if other != source:
        same = f"both are {name!r}" if other_name == name else f"{other_name!r} and {name!r} are one file on case-insensitive file systems"
        raise DownloadError(f"{source} would be written over {other} ({same}); refused")


def _unpack(archive: Path, staging: Path, source: str) -> None:
    def plain_files_only(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if member.issym() or member.islnk():
            raise DownloadError(f"{source}: archive member {member.name!r} is a link; only plain files are unpacked")
        return tarfile.data_filter(member, dest)  # also refuses absolute and '..' paths, devices

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging)  # zipfile drops absolute and '..' parts of member names
        else:
            with tarfile.open(archive) as t:
                t.extractall(staging, filter=plain_files_only)
    except DownloadError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DownloadError(f"{source}: cannot unpack the archive: {err}") from None


def _extract(archive: Path, folder: Path, source: str, claimed: dict[str, tuple[str, str]]) -> None:
    """Unpack a zip or tar archive into ``folder``, flattened: every member checked and claimed first (so no
    two members, and no member and a file of the record, share a name), then each renamed into place.
    Hidden members (``__MACOSX/._x``) are skipped and logged."""
    staging = folder / f".extract-{archive.name}"  # fixed so a killed run's leftovers are removed; under the lock
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _unpack(archive, staging, source)
        moves = []
        for path in sorted(staging.rglob("*")):
            member = path.relative_to(staging).as_posix()
            if path.is_symlink():
                raise DownloadError(f"{source}: archive member {member!r} is a link; only plain files are unpacked")
            if not path.is_file():
                continue
            if path.name.startswith("."):
                logger.warning("%s: hidden archive member %r skipped", source, member)
                continue
            _claim(claimed, path.name, f"{source}: archive member {member!r}")
            moves.append((path, _local_name(folder, path.name, f"{source}: archive member")))
        for path, target in moves:
            os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_record(record_id: str, folder: str | Path, retries: int = 5) -> list[Path]:
    """Every file of a Zenodo record into ``folder``: tar shards as they are, zip/tar.gz archives unpacked.

    Every key is checked before anything is downloaded (one plain file name, no two on one file), every
    archive member before anything is unpacked; nothing is ever written outside ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    downloads = folder / ".downloads"
    with download_lock(folder):
        remotes = record_files(record_id, session, retries)
        claimed: dict[str, tuple[str, str]] = {}
        plan = []
        for remote in remotes:
            archive = remote.key.endswith((".zip", ".tar.gz", ".tgz"))
            plan.append((remote, archive, _local_name(downloads if archive else folder, remote.key,
                                                      f"Zenodo record {record_id}, file key")))
            if not archive:
                _claim(claimed, remote.key, f"Zenodo record {record_id}, file key {remote.key!r}")
        for remote, archive, target in plan:
            download_file(remote, target, session, retries)
            if archive:
                _extract(target, folder, f"Zenodo record {record_id}, file {remote.key}", claimed)
                target.unlink()
        shutil.rmtree(downloads, ignore_errors=True)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".part") and not p.name.startswith("."))

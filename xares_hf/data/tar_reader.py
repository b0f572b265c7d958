"""Read WebDataset tar shards member by member into one row of raw bytes per sample, checking the members.

WebDataset groups a shard's members by key (the name up to the extension); this reader does the same and
records what is wrong with a sample's members (absolute or ``..`` paths, links, dotted keys, duplicates, a
missing audio or JSON member) in the row's ``problem``, so the caller can name the sample. A shard that is
not a tar, unreadable, or truncated (even exactly at a member boundary) raises :class:`DataError`.
"""

from __future__ import annotations

import re
import tarfile
from typing import Iterator

from .shards import DataError

AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg", "opus", "m4a", "sox", "wma")


def show_name(text: str) -> str:
    """A member name or key as it goes in a one-line message (control characters escaped)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def one_line(err: BaseException) -> str:
    """An error's first line, without torchcodec's ``function, file.cpp:line,`` prefix."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return re.sub(r"^\w+, \S+:\d+, ", "", lines[0]).strip()


def _split_name(name: str) -> tuple[str, str, str]:
    """``(key, extension, stem)`` of a member name, the key including any folder (WebDataset's grouping).

    The extension is the text after the last dot of the base name, so a dotted key (``a.b.flac``) stays
    whole and can be reported, where WebDataset would silently make it key ``a`` with field ``b.flac``.
    """
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    return (f"{folder}/{stem}" if folder else stem), ext.lower(), stem


def _member_problem(member: tarfile.TarInfo) -> str | None:
    name = show_name(member.name)
    if member.name.startswith("/"):
        return f"member '{name}' has an absolute path"
    if ".." in member.name.split("/"):
        return f"member '{name}' has a '..' path component"
    if not member.isfile():
        kind = "symbolic link" if member.issym() else "hard link" if member.islnk() else "special file"
        return f"member '{name}' is a {kind}, not a regular file"
    return None


def _sample_row(url: str, key: str, members: list[tuple[str, str, str, bytes | None, str | None]], earlier: set[str]) -> dict:
    """One dataset row from a sample's members ``(name, ext, stem, data, problem)``, with the first problem found."""
    names = [name for name, *_ in members]
    audio = [(name, data) for name, ext, _, data, _ in members if ext in AUDIO_EXTENSIONS]
    metadata = [data for _, ext, _, data, _ in members if ext == "json"]
    problems = [problem for *_, problem in members if problem]
    problems += [
        f"key contains a dot (member '{show_name(name)}'); keys must not contain dots in WebDataset"
        for name, _, stem, _, _ in members if "." in stem
    ][:1]
    problems += [f"duplicate member '{show_name(name)}'" for i, name in enumerate(names) if name in names[:i]][:1]
    if key in earlier:
        problems.append("duplicate key: an earlier sample of this shard has the same key")
    if len(audio) > 1:
        problems.append("more than one audio member (" + ", ".join(f"'{show_name(name)}'" for name, _ in audio) + ")")
    if not audio:
        problems.append(f"no audio member (expected '{show_name(key)}.{{{','.join(AUDIO_EXTENSIONS[:4])},...}}')")
    if not metadata:
        problems.append(f"no JSON member (expected '{show_name(key)}.json')")
    return {
        "__key__": key,
        "__url__": url,
        "audio": {"bytes": audio[0][1], "path": None} if audio and audio[0][1] is not None else None,
        "audio_member": audio[0][0] if audio else None,
        "json": metadata[0] if metadata else None,
        "problem": problems[0] if problems else None,
    }


def _end_of_archive(ending: list[Exception], last: str | None) -> str | None:
    """Why the archive is incomplete, from the header error that ended tarfile's iteration; None if complete."""
    after = f"after member '{show_name(last)}'" if last is not None else "at its start"
    if ending and isinstance(ending[-1], tarfile.EOFHeaderError):
        return None  # a zero block: the end-of-archive marker every complete tar carries
    if not ending or isinstance(ending[-1], tarfile.EmptyHeaderError):
        return f"truncated: the file ends {after} without the end-of-archive zero blocks"
    if isinstance(ending[-1], tarfile.TruncatedHeaderError):
        return f"truncated: the file ends inside the tar header {after}"
    return f"invalid tar header {after}: {one_line(ending[-1])}"


def _shard_error(err: Exception, last: str | None) -> str:
    text = str(err)
    if isinstance(err, tarfile.ReadError) and text.startswith("file could not be opened successfully"):
        # tarfile tried every method of "r:*" and lists why each failed
        return "empty file" if last is None and "empty file" in text else "not a tar archive (plain, gzip, bzip2 or xz)"
    if isinstance(err, tarfile.ReadError) and text == "unexpected end of data" and last is not None:
        return f"truncated: the file ends inside member '{show_name(last)}'"
    if isinstance(err, EOFError):
        return f"truncated: {one_line(err)}"
    return one_line(err)


def _read_shard(url: str, task: str, split: str) -> Iterator[dict]:
    """The samples of one shard as rows of raw bytes, in order; problems of a sample go in its ``problem``."""
    import fsspec

    def unreadable(why: str) -> DataError:
        return DataError(f"task '{task}', split '{split}': cannot read shard {url}: {why}")

    ending: list[Exception] = []

    class _Header(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, tar):  # remember which header error ended the archive: tarfile hides it
            try:
                return super().fromtarfile(tar)
            except tarfile.HeaderError as err:
                ending.append(err)
                raise

    earlier: set[str] = set()
    held: list[dict] = []  # samples seen before the shard's first audio member
    seen_audio = False
    key, members, last = None, [], None
    try:
        # read in order but through a seekable file ("r:*", compression detected): tarfile's stream mode
        # ("r|*") copies its buffer on every read and measured slower
        with fsspec.open(url, "rb") as handle, tarfile.open(fileobj=handle, mode="r:*", tarinfo=_Header) as tar:
            while True:
                member = tar.next()
                if member is None:
                    break
                tar.members = []  # tarfile keeps every header otherwise
                last = member.name
                if member.isdir():
                    continue
                name_key, ext, stem = _split_name(member.name)
                problem = _member_problem(member)
                if problem is None and (not ext or stem.startswith(".") or not stem):
                    continue  # no WebDataset key (README, .hidden, ._resource-fork): not part of a sample
                data = tar.extractfile(member).read() if member.isfile() else None
                seen_audio = seen_audio or ext in AUDIO_EXTENSIONS
                if name_key != key and members:
                    row = _sample_row(url, key, members, earlier)
                    earlier.add(key)
                    held.append(row)
                    if seen_audio:
                        yield from held
                        held = []
                    members = []
                key = name_key
                members.append((member.name, ext, stem, data, problem))
            why = _end_of_archive(ending, last)
            if why is not None:
                raise unreadable(why)
    except DataError:
        raise
    except Exception as err:  # not a tar, truncated inside a member, I/O or network error
        raise unreadable(_shard_error(err, last)) from err
    if not seen_audio:
        raise DataError(
            f"task '{task}', split '{split}': shard {url} holds no audio file "
            f"(expected <key>.{{{','.join(AUDIO_EXTENSIONS[:4])}}} + <key>.json)"
        )
    if members:
        held.append(_sample_row(url, key, members, earlier))
    yield from held


def read_shards(files: list[str], task: str, split: str) -> Iterator[dict]:
    """The rows of every shard, in order."""
    for url in files:
        yield from _read_shard(url, task, split)

"""Read WebDataset tar shards member by member into one row of raw bytes per sample, checking the members.

WebDataset groups a shard's members by key (the name up to the extension); this reader does the same and
records what is wrong with a sample's members (absolute or ``..`` paths, links, dotted keys, duplicates, a
missing audio or JSON member, a member too large to read) in the row's ``problem``, so the caller can name
the sample. A member that is no part of a sample (no extension, a hidden file such as ``.DS_Store`` or a
``._k0.flac`` resource fork) or that a sample carries besides its audio and JSON (``k0.txt``) is not read:
it becomes a row with ``left_out`` saying why, so that nothing in a shard goes unmentioned. A shard that is
not a tar, unreadable, or truncated (even exactly at a member boundary) raises :class:`DataError`.
"""

from __future__ import annotations

import tarfile
from typing import Iterator

from ..messages import one_line, show_name
from .shards import DataError

AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg", "opus", "m4a", "sox", "wma")


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


def _too_large(member: tarfile.TarInfo, max_bytes: int) -> str:
    return (f"member '{show_name(member.name)}' is {member.size} bytes, more than a clip of the card's "
            f"data.max_duration can reasonably take ({max_bytes} bytes): it was not read "
            "(raise data.max_duration if the clip is real)")


def _no_sample(name: str, ext: str, stem: str) -> str | None:
    """Why a member belongs to no sample (WebDataset would ignore it without a word), or None."""
    if not ext:
        return f"member '{show_name(name)}' has no extension: it belongs to no sample"
    if not stem or stem.startswith("."):
        return f"member '{show_name(name)}' is a hidden file (its name starts with a dot): it belongs to no sample"
    return None


def _left_out_row(url: str, name: str, reason: str) -> dict:
    return {"__key__": name, "__url__": url, "audio": None, "audio_member": None, "json": None, "problem": None,
            "left_out": reason}


def _sample_row(url: str, key: str, members: list[tuple[str, str, str, bytes | None, str | None]], earlier: set[str]) -> dict:
    """One dataset row from a sample's members ``(name, ext, stem, data, problem)``, with the first problem found."""
    names = [name for name, *_ in members]
    audio = [(name, data) for name, ext, _, data, _ in members if ext in AUDIO_EXTENSIONS]
    metadata = [(name, data) for name, ext, _, data, _ in members if ext == "json"]
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
    if len(metadata) > 1:  # k0.json and k0.JSON: which one holds the label?
        problems.append("more than one JSON member (" + ", ".join(f"'{show_name(name)}'" for name, _ in metadata) + ")")
    if not audio:
        problems.append(f"no audio member (expected '{show_name(key)}.{{{','.join(AUDIO_EXTENSIONS[:4])},...}}')")
    if not metadata:
        problems.append(f"no JSON member (expected '{show_name(key)}.json')")
    return {
        "__key__": key,
        "__url__": url,
        "audio": audio[0][1] if audio else None,
        "audio_member": audio[0][0] if audio else None,
        "json": metadata[0][1] if metadata else None,
        "problem": problems[0] if problems else None,
        "left_out": None,
    }


def _extra_members(url: str, members: list[tuple[str, str, str, bytes | None, str | None]]) -> list[dict]:
    """Rows for a sample's members that are neither its audio nor its JSON: not read, and said so."""
    return [
        _left_out_row(url, name, f"member '{show_name(name)}' is neither audio ({', '.join(AUDIO_EXTENSIONS)}) "
                                 "nor JSON: it was not read")
        for name, ext, _, _, problem in members if problem is None and ext != "json" and ext not in AUDIO_EXTENSIONS
    ]


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


def _read_shard(url: str, task: str, split: str, max_bytes: int | None) -> Iterator[dict]:
    """The samples of one shard as rows of raw bytes, in order; problems of a sample go in its ``problem``.

    Rows of members left out (``left_out`` set) come in the shard's order too; a member of more than
    ``max_bytes`` is not read (its sample's ``problem`` says so)."""
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
    held: list[dict] = []  # rows seen before the shard's first audio member
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
                    continue  # a folder holds no data: nothing of it can be left out
                name_key, ext, stem = _split_name(member.name)
                problem = _member_problem(member)
                outside = _no_sample(member.name, ext, stem) if problem is None else None
                if outside:  # no WebDataset key (README, .DS_Store, ._k0.flac resource fork)
                    held.append(_left_out_row(url, member.name, outside))
                    continue
                wanted = problem is None and (ext == "json" or ext in AUDIO_EXTENSIONS)
                if wanted and max_bytes is not None and member.size > max_bytes:
                    problem, wanted = _too_large(member, max_bytes), False  # before tarfile reads it whole
                data = tar.extractfile(member).read() if wanted else None
                seen_audio = seen_audio or ext in AUDIO_EXTENSIONS
                if name_key != key and members:
                    held.append(_sample_row(url, key, members, earlier))
                    held += _extra_members(url, members)
                    earlier.add(key)
                    members = []
                if seen_audio:
                    yield from held
                    held = []
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
        held += _extra_members(url, members)
    yield from held


def read_shards(files: list[str], task: str, split: str, max_bytes: int | None = None) -> Iterator[dict]:
    """The rows of every shard, in order; members larger than ``max_bytes`` are refused without being read."""
    for url in files:
        yield from _read_shard(url, task, split, max_bytes)

"""How text from outside (names, values, exceptions) goes into a one-line error message: escaped and cut short.

Card fields, sample keys, tar member names and file contents can hold control characters, newlines or megabytes
of text; every message that shows one goes through these, so no message spans lines or floods a log.
"""

from __future__ import annotations

import re


def quoted(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a one-line message, cut to ``limit`` characters (card and sample text can be huge)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def show_name(text: str) -> str:
    """A member name or key as it goes in a one-line message (control characters escaped)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def one_line(err: BaseException) -> str:
    """An error's first line, without torchcodec's ``function, file.cpp:line,`` prefix."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return re.sub(r"^\w+, \S+:\d+, ", "", lines[0]).strip()

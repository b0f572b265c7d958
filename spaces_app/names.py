"""The one file-name sanitiser of xares-hf and the leaderboard Space: an id we must keep using (an encoder id, a
Hub repo id) made into one plain file name. It lives in the Space's folder so that the Space, deployed alone,
needs nothing else; ``xares_hf.paths.safe_component`` is this function.
"""

from __future__ import annotations

import hashlib
import re

SAFE_MAX = 120  # neutralised names stay well under the 255-byte file-name limit, with room for a suffix
_PLAIN_PART = r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*"  # no "__", no leading "." or "_": "/" can become "__"
_PLAIN = re.compile(rf"{_PLAIN_PART}(?:/{_PLAIN_PART})?")
_WINDOWS_DEVICES = re.compile(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")


def safe_component(text: str, reserved: tuple[str, ...] = ()) -> str:
    """One plain file name for an id we must keep using, and a different one for every different id.

    A Hub-style id (``org/model``, ``log-mel``: letters and digits joined by single ``.``, ``_`` or ``-``, at
    most one ``/``) stays readable, ``/`` becoming ``__`` (``org/model`` -> ``org__model``). Anything else (or a
    readable form holding one of the caller's ``reserved`` strings) keeps its safe characters and gets
    ``___`` and a hash of the whole id, so ``org__model``, ``org model`` and ``..`` never meet ``org/model``."""
    text = str(text)
    if _PLAIN.fullmatch(text) and len(text) <= SAFE_MAX:
        readable = text.replace("/", "__")
        if not _WINDOWS_DEVICES.fullmatch(readable) and not any(r in readable for r in reserved):
            return readable
    kept = re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("/", "__")).strip("._-")[:SAFE_MAX - 16] or "id"
    return f"{kept}___{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"

"""The embedding store: entries on disk read through memory maps, and views of them by clip."""

from .entry import Entry, EntryError, Streamed, write_entry
from .spool import FrameSpool
from .tables import Frames, Rows

__all__ = ["Entry", "EntryError", "FrameSpool", "Frames", "Rows", "Streamed", "write_entry"]

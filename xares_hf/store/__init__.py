"""The embedding store: entries on disk read through memory maps, and views of them by clip."""

from .entry import Entry, EntryError, write_entry
from .tables import Frames, Rows

__all__ = ["Entry", "EntryError", "Frames", "Rows", "write_entry"]

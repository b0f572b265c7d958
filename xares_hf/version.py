"""Package version, kept in one place so results files can record it."""

__version__ = "0.1.0"

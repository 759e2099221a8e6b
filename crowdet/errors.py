"""User-facing errors. The CLI prints their message on one line and exits non-zero."""

from __future__ import annotations


class CrowdetError(Exception):
    """A mistake in the user's input (file, config, argument), explained in its message."""


class DataError(CrowdetError):
    """Bad data, located: the file and, where known, the line / image ID / box ID."""

    def __init__(self, message: str, path: str = "", line: int | None = None, kind: str = ""):
        self.path, self.line, self.kind, self.reason = str(path), line, kind, message
        where = self.path + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(CrowdetError):
    """A config key that does not exist or has a wrong value."""

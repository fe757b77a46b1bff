"""File helpers shared by the data engine, the feature cache, training and evaluation."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


class DataFileError(ValueError):
    """A data file that cannot be read as text or JSON (the message names the file)."""


def read_text(path: str | Path) -> str:
    """A UTF-8 text file's contents; a missing, unreadable or non-UTF-8 file raises an error naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataFileError(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise DataFileError(f"{path}: cannot be read ({err.strerror})") from None


def read_json(path: str | Path) -> object:
    """A JSON file's value; errors name the file (and the line and column of a syntax error)."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataFileError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file (and
    concurrent writers of the same path never share a temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


class ContentKeys:
    """SHA-256 of a file's bytes, memoised per (resolved path, size, mtime): the key under which the feature
    cache and the frame cache store a clip, so renaming a dataset keeps its caches and an edited clip misses."""

    def __init__(self):
        self._memo: dict[tuple[str, int, int], str] = {}

    def __call__(self, path: str | Path) -> str:
        path = Path(path).resolve()
        stat = path.stat()
        memo = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo not in self._memo:
            self._memo[memo] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._memo[memo]

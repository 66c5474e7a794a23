"""Small JSON files shared between processes: atomic writes, tolerant reads, and an advisory lock.

Several processes (the API, the reconciler, `polycloud down`) read and write the same driver files, so
every write is a rename of a complete temporary file (readers never see half a file) and every
read-modify-write runs under `file_lock`, an `flock` on a separate lock file. `flock` locks belong to an
open file description, so two threads of one process that each open the lock file exclude each other
too; the lock is *not* reentrant: never take it twice in one thread.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any] | None:
    """Read a JSON object from `path`.

    Args:
        path: The file to read.

    Returns:
        The object, or None when the file is missing or does not hold a JSON object (a file written by
        a newer or broken writer is treated as absent rather than crashing the caller).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically replace `path` with `data` as JSON (readers see the old or the new file, never half).

    Args:
        path: The destination; its folder is created when missing.
        data: A JSON-serialisable object.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove(path: Path) -> None:
    """Delete `path` if it exists."""
    path.unlink(missing_ok=True)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created when missing) for the `with` block.

    Args:
        path: The lock file. Use a file of its own, never one that is replaced by `write_json`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # under the home: private
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock

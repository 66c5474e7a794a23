"""Where a running control plane says it is (`$POLYCLOUD_HOME/control-plane.json`) and its lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from polycloud.errors import ConflictError

RUNFILE = "control-plane.json"
LOCKFILE = "control-plane.lock"
TOKENFILE = "admin.token"


@dataclass(frozen=True)
class RunInfo:
    pid: int
    api_url: str
    gateway_url: str


def read_runinfo(home: Path) -> RunInfo | None:
    """The run file's content if it names a live process, else None."""
    try:
        data = json.loads((home / RUNFILE).read_text())
        info = RunInfo(
            pid=int(data["pid"]), api_url=str(data["api_url"]), gateway_url=str(data["gateway_url"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid_alive(info.pid) else None


def write_runinfo(home: Path, info: RunInfo) -> None:
    tmp = home / f".{RUNFILE}.tmp"
    tmp.write_text(json.dumps(asdict(info)))
    tmp.replace(home / RUNFILE)


def remove_runinfo(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (home / RUNFILE).unlink()


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie does not: a control plane started in the background by this very
    process (as `apply` and `demo` do) stays a zombie after it exits until its parent reaps it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


@contextlib.contextmanager
def exclusive(home: Path) -> Iterator[None]:
    """Hold the home's control-plane lock: one control plane per home on this machine."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCKFILE).open("a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            running = read_runinfo(home)
            where = f" (pid {running.pid}, API {running.api_url})" if running else ""
            raise ConflictError(f"a control plane already runs for {home}{where}") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def write_token(home: Path, token: str) -> Path:
    path = home / TOKENFILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def read_token(home: Path) -> str | None:
    try:
        return (home / TOKENFILE).read_text().strip() or None
    except OSError:
        return None

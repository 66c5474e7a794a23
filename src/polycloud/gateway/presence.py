"""Where the gateway of a home says it is: `$POLYCLOUD_HOME/gateway.json`, guarded by `gateway.lock`.

A gateway started with a home (`polycloud gateway`, `polycloud up`, `python -m polycloud.gateway
--home`) holds the home's gateway lock (`flock`) for its whole life, so one home has at most one gateway
on a machine, and publishes its pid, member id, address, URL and a fingerprint of its database URL in
the run file, which it removes when it stops. The lock is the truth, the file the directions: a file
left behind by a killed gateway names a dead process, and no process holds the lock. A control plane
(`polycloud.server.children`) reads both to adopt the gateway of its home rather than start a second
one, and `polycloud down` to stop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from polycloud.errors import ConflictError

RUNFILE = "gateway.json"
LOCKFILE = "gateway.lock"


@dataclass(frozen=True)
class GatewayInfo:
    """What a running gateway says about itself in its home's run file."""

    pid: int
    id: str
    """Its member id in the store (`gw-<host>-<port>`)."""
    addr: str
    """`host:port` it was asked to listen on (what `POLYCLOUD_GATEWAY_ADDR` says)."""
    url: str
    """Where it serves, with the port it got."""
    store: str = ""
    """`store_fingerprint` of its database URL (never the URL: it may hold a password)."""


def store_fingerprint(database_url: str) -> str:
    """A short digest naming a database URL without revealing it."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def read_info(home: Path) -> GatewayInfo | None:
    """The run file's content when it names a live process, else None."""
    try:
        data = json.loads((home / RUNFILE).read_text())
        info = GatewayInfo(
            pid=int(data["pid"]),
            id=str(data["id"]),
            addr=str(data["addr"]),
            url=str(data["url"]),
            store=str(data.get("store", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid_alive(info.pid) else None


def locked(home: Path) -> bool:
    """Whether some process holds the gateway lock of `home` now (a momentary probe)."""
    try:
        fd = os.open(home / LOCKFILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing lets go of a probe that succeeded
    return False


def running_gateway(home: Path, wait_s: float = 0.0) -> GatewayInfo | None:
    """The gateway that holds `home`'s lock, as its run file describes it; None when none runs.

    Args:
        home: The gateway's home.
        wait_s: How long to wait for the run file of a gateway that holds the lock but has not
            published it yet (it is starting).
    """
    deadline = time.monotonic() + wait_s
    while True:
        if not locked(home):
            return None
        info = read_info(home)
        if info is not None or time.monotonic() >= deadline:
            return info
        time.sleep(0.05)


class Presence:
    """This process's hold on its home as its gateway: the lock, then the run file."""

    def __init__(self, home: Path) -> None:
        """Prepare to hold `home` (nothing happens before `acquire`)."""
        self.home = home
        self._fd: int | None = None
        self._published: GatewayInfo | None = None

    def acquire(self, wait_s: float = 2.0) -> None:
        """Take the home's gateway lock, waiting at most `wait_s` (a probe by `locked` is momentary).

        Raises:
            ConflictError: Another gateway runs for this home.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / LOCKFILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    other = read_info(self.home)
                    where = f" (pid {other.pid}, {other.url})" if other else ""
                    raise ConflictError(f"a gateway already runs for {self.home}{where}") from None
                time.sleep(0.05)
        self._fd = fd

    def publish(self, info: GatewayInfo) -> None:
        """Write the run file (atomically)."""
        tmp = self.home / f".{RUNFILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(info)))
        tmp.replace(self.home / RUNFILE)
        self._published = info

    def release(self) -> None:
        """Remove the run file (if it is still ours) and let go of the lock."""
        if self._published is not None:
            current = read_info(self.home)
            if current is None or current.pid == self._published.pid:
                with contextlib.suppress(FileNotFoundError):
                    (self.home / RUNFILE).unlink()
            self._published = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

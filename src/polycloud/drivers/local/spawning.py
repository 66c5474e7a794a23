"""Starting a replica process: a pre-bound port, a log file, a clean environment, a new session.

The driver binds `127.0.0.1:0` itself and hands the listening socket to the child (`--fd`), so the
port is reserved by the kernel from the moment it is chosen: two concurrent starts can never pick the
same port, and nothing can take it between choosing and serving.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from polycloud.errors import PermanentError, TransientError

LOG_TAIL_BYTES = 8192
_DROPPED_PREFIX = "POLYCLOUD_"


def bind_listener() -> socket.socket:
    """A TCP socket bound to a free port of 127.0.0.1 and listening.

    Raises:
        TransientError: No port could be bound now.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise TransientError(f"cannot reserve a local port: {e}") from e
    return sock


def replica_env(parent: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a replica: the parent's, minus polycloud's own settings, plus `extra`.

    The control plane's `POLYCLOUD_*` settings (database URL, API token) are not the replica's
    business and are dropped; `extra` (the spec's env, secrets included) may set anything.

    Args:
        parent: The control plane's environment.
        extra: The replica's own variables.

    Raises:
        PermanentError: A name or value that no environment can hold.
    """
    for name, value in extra.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise PermanentError(f"invalid environment variable {name!r}")
    env = {k: v for k, v in parent.items() if not k.startswith(_DROPPED_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def log_size(path: Path) -> int:
    """Current size of a log file (0 when it does not exist yet)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def spawn(
    command: list[str], env: Mapping[str, str], log_path: Path, listener: socket.socket, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start `command` in a new session, stdout and stderr appended to `log_path`, `listener` inherited.

    Returns immediately after the exec; the caller closes its copy of `listener`.

    Raises:
        PermanentError: The command could not be executed (missing interpreter, bad folder).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )
        except OSError as e:
            raise PermanentError(f"cannot start replica process {command[0]!r}: {e}") from e


def last_log_line(path: Path, offset: int) -> str:
    """The last non-empty line written to `path` after byte `offset` ('' when there is none).

    Args:
        path: The log file.
        offset: Where this run's output starts (earlier runs of the same replica id append too).
    """
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            start = max(offset, size - LOG_TAIL_BYTES)
            if start >= size:
                return ""
            log.seek(start)
            tail = log.read(size - start)
    except OSError:
        return ""
    for line in reversed(tail.decode("utf-8", errors="replace").splitlines()):
        if line.strip():
            return line.strip()[:500]
    return ""

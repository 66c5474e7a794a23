"""Starting a replica process: a pre-bound port, a log file, a clean environment, a new session.

The driver binds `127.0.0.1:0` itself and hands the listening socket to the child (`--fd`), so the
port is reserved by the kernel from the moment it is chosen: two concurrent starts can never pick the
same port, and nothing can take it between choosing and serving.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from polycloud.drivers.base import ReplicaSpec
from polycloud.drivers.local.processes import server_command
from polycloud.errors import PermanentError, TransientError
from polycloud.serving.fetching import fetch_model, is_uri
from polycloud.spec.models import Runtime

LOG_TAIL_BYTES = 8192
_DROPPED_PREFIX = "POLYCLOUD_"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")


def is_safe_name(name: str) -> bool:
    """Whether `name` can be a file name and a command-line value as it is (no `/`, no leading `-`)."""
    return _SAFE_NAME.match(name) is not None


def check_name(what: str, name: str) -> None:
    """Refuse a cluster name or replica id that `is_safe_name` rejects.

    Raises:
        PermanentError: `name` is not letters, digits, `.`, `_` and `-`, starting and ending with a
            letter or digit.
    """
    if not is_safe_name(name):
        raise PermanentError(f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-'")


def replica_command(
    python: str, spec: ReplicaSpec, home: Path, *, port: int, fd: int, tls_dir: Path | None = None
) -> list[str]:
    """The command line of `spec`'s replica process (no environment values: secrets stay off argv).

    Args:
        python: The interpreter.
        spec: The replica.
        home: The resolved polycloud home (how the driver recognises its replicas; its `models` folder
            caches models named by URI).
        port: The port of the inherited socket (informational for the server).
        fd: The inherited listening socket's descriptor.
        tls_dir: The replica's certificate folder when it serves mutual TLS.
    """
    model = spec.model_path
    runtime = spec.runtime
    if runtime is not None and is_uri(model):
        pass  # the user's server fetches what it is given
    elif is_uri(model):  # the digest-named copy apply fetched (fetched again on a host that lacks it)
        model = str(fetch_model(model, home / "models", spec.model_sha256)[0])
    elif model:
        model = str(Path(model).expanduser().resolve())
    options = {"name": spec.service, "host": "127.0.0.1", "port": str(port), "fd": str(fd)}
    if model:
        options["model"] = model
    if spec.model_sha256 and runtime is None:
        options["sha256"] = spec.model_sha256
    if spec.protocol != "oip-v2":
        options["protocol"] = spec.protocol
    if runtime is not None:
        options |= runtime_options(python, runtime)
    options |= {
        "delay-ms": str(float(spec.delay_ms)),  # the fixed base; injected faults are sent later, as extra
        "replica-id": spec.id,
        "cluster": spec.cluster,
        "revision": str(spec.revision),
        "spec-hash": spec.spec_hash,
        "home": str(home),
    }
    if tls_dir is not None:
        options["tls-dir"] = str(tls_dir)
    return server_command(python, options)


def runtime_options(python: str, runtime: Runtime) -> dict[str, str]:
    """The flags that run `runtime`'s command behind the replica's sidecar (`polycloud.serving.sidecar`);
    `python`/`python3` as the command's program means polycloud's interpreter, as for Jobs.

    Raises:
        PermanentError: The runtime has no command (only an image, which only Kubernetes runs).
    """
    if runtime.command is None:
        raise PermanentError(
            "the runtime has no command: the local driver runs commands "
            f"(image {runtime.image!r} is for Kubernetes)"
        )
    argv = list(runtime.command)
    if argv[0] in ("python", "python3"):
        argv[0] = python
    return {"runtime-command": json.dumps(argv), "readiness-path": runtime.readinessPath}


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

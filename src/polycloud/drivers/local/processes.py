"""Replica processes as the operating system shows them: the command line is the source of truth.

A replica is a `python -m polycloud.serving ... --home H --cluster C --replica-id ID` process. Scanning
the process table for those arguments finds every replica of a home, including ones started by a
control plane that has since crashed, so no registry can drift from what actually runs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from polycloud.drivers.local.children import CHILDREN

SERVER_MODULE = "polycloud.serving"


@dataclass(frozen=True)
class ReplicaProcess:
    """A running replica process and what its command line says about it."""

    pid: int
    create_time: float
    home: str
    cluster: str
    replica_id: str
    service: str
    revision: int
    spec_hash: str
    port: int | None
    delay_ms: float
    scheme: str = "http"
    """"https" for a replica serving mutual TLS (its command line names a `--tls-dir`)."""

    @property
    def key(self) -> tuple[int, float]:
        """Identifies this process even if its pid is reused later."""
        return (self.pid, self.create_time)

    @property
    def endpoint(self) -> str | None:
        """The replica's base URL, when its command line names a port."""
        return None if self.port is None else f"{self.scheme}://127.0.0.1:{self.port}"


def server_command(python: str, options: Mapping[str, str]) -> list[str]:
    """The command line of a replica process.

    Args:
        python: The interpreter.
        options: Long options without the leading dashes (`{"model": "/m.onnx", "fd": "5"}`), in order.
    """
    command = [python, "-m", SERVER_MODULE]
    for name, value in options.items():
        command += [f"--{name}", value]
    return command


def _options(args: list[str]) -> dict[str, str]:
    """`--name value` and `--name=value` pairs of `args` (flags without a value are skipped)."""
    found: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("--"):
            continue
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i >= len(args) or args[i].startswith("--"):
                continue
            value = args[i]
            i += 1
        found.setdefault(name, value)
    return found


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _float(text: str | None) -> float:
    try:
        return 0.0 if text is None else float(text)
    except ValueError:
        return 0.0


def parse_command(pid: int, create_time: float, cmdline: list[str]) -> ReplicaProcess | None:
    """Read a replica's identity from its command line; None for any other process.

    Args:
        pid: The process id.
        create_time: The process start time as psutil reports it.
        cmdline: The process's argv.
    """
    try:
        start = cmdline.index(SERVER_MODULE)
    except ValueError:
        return None
    if start == 0 or cmdline[start - 1] != "-m":
        return None
    opts = _options(cmdline[start + 1 :])
    needed = ("home", "cluster", "replica-id")
    if any(not opts.get(name) for name in needed):
        return None
    return ReplicaProcess(
        pid=pid,
        create_time=create_time,
        home=opts["home"],
        cluster=opts["cluster"],
        replica_id=opts["replica-id"],
        service=opts.get("name", ""),
        revision=_int(opts.get("revision")) or 0,
        spec_hash=opts.get("spec-hash", ""),
        port=_int(opts.get("port")),
        delay_ms=_float(opts.get("delay-ms")),
        scheme="https" if opts.get("tls-dir") else "http",
    )


def scan(home: Path, cluster: str | None = None) -> list[ReplicaProcess]:
    """Every live replica process of `home` (and of `cluster`, when given), oldest first.

    Zombie children of this process are reaped first; other zombies are skipped (they no longer run).

    Args:
        home: The polycloud home, as given to the driver (compared resolved).
        cluster: Restrict to one cluster.
    """
    CHILDREN.reap()
    wanted = str(home)
    found: list[ReplicaProcess] = []
    for proc in psutil.process_iter(["cmdline", "create_time", "status"]):
        info = proc.info
        cmdline = info.get("cmdline")
        if not cmdline or info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        replica = parse_command(proc.pid, info.get("create_time") or 0.0, cmdline)
        if replica is None or replica.home != wanted:
            continue
        if cluster is None or replica.cluster == cluster:
            found.append(replica)
    found.sort(key=lambda r: r.create_time)
    return found


def is_running(replica: ReplicaProcess) -> bool:
    """Whether `replica`'s process still runs (not exited, not a zombie, pid not reused)."""
    return pid_running(replica.pid, replica.create_time)


def pid_running(pid: int, create_time: float | None) -> bool:
    """Whether process `pid`, started at `create_time` (any start time when None), still runs.

    A child of this process counts as running until it has been reaped (and is reaped here once it
    has exited); another process counts as running until it is a zombie. A dying process may run for
    a moment after its command line has vanished from the process table.
    """
    ours = CHILDREN.running(pid)
    if ours is not None:
        # A killed multi-threaded child shows as a zombie before it can be reaped; only the reap counts.
        return ours
    try:
        proc = psutil.Process(pid)
        if create_time is not None and proc.create_time() != create_time:
            return False  # the pid was reused
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone, or a zombie psutil refuses to describe
        return False


def start_time(pid: int) -> float | None:
    """The start time psutil reports for `pid` (None if it is already gone)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def send(replica: ReplicaProcess, sig: signal.Signals) -> bool:
    """Send `sig` to a replica's process group (it is a session leader), or to the process alone.

    Returns:
        True when the signal was delivered; False when the process is gone (never raises for that).
    """
    if not is_running(replica):
        return False
    try:
        if os.getpgid(replica.pid) == replica.pid:
            os.killpg(replica.pid, sig)
        else:
            os.kill(replica.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_gone(replicas: Iterable[ReplicaProcess], timeout_s: float) -> list[ReplicaProcess]:
    """Wait until every replica process has exited (children are reaped) or `timeout_s` passed.

    Returns:
        The replicas still running at the end.
    """
    alive = list(replicas)
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [r for r in alive if is_running(r)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)

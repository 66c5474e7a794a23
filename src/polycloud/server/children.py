"""The gateway of a control plane's home: adopted when one runs, else started detached, and watched.

A gateway must never die because a control-plane process died (DESIGN.md §5). So `up` does not start
it as a child tied to its own life: `GatewayProcess.claim` first looks for the gateway of its home (the
one holding `$POLYCLOUD_HOME/gateway.lock`, `polycloud.gateway.presence`) and adopts it when it serves
the same address; otherwise it checks that the address is free, and `start` runs `python -m
polycloud.gateway --home HOME` in a session of its own (no parent-death signal), logging to
`logs/gateway.log`. While `up` runs, a supervisor thread restarts the gateway when it dies (adopted or
started, backing off 0.5 s doubling to 30 s while it keeps failing), adopting instead whatever gateway
of the home appeared meanwhile. When `up` stops, the gateway keeps serving, unless the stop is
`polycloud down` (`stop(terminate=True)`), which stops it as it stops the replicas; `stop_gateway` does
the same for `down` when no control plane runs. A SIGKILLed `up` leaves it serving; the next `up`
adopts it.

The database URL reaches the gateway through `POLYCLOUD_DATABASE_URL` in its environment, not its
command line, which any user of the machine can read.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from polycloud.errors import ConflictError, UserError
from polycloud.gateway.presence import (
    GatewayInfo,
    pid_alive,
    read_info,
    running_gateway,
    store_fingerprint,
)

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0
"""How long a stopping gateway may drain (its own drain timeout is 15 s) before it is killed."""
ADOPT_WAIT_S = 2.0
"""How long to wait for the run file of a gateway that holds its home's lock but is still starting."""


def gateway_args(*, addr: str, region: str, home: Path) -> list[str]:
    """The arguments of `python -m polycloud.gateway` for the gateway of `home` (`--home` also lets
    anyone find its process by home)."""
    return ["--addr", addr, "--region", region, "--home", str(home)]


def gateway_command(*, addr: str, region: str, home: Path) -> list[str]:
    """The command line of the gateway of `home`."""
    return [sys.executable, "-m", "polycloud.gateway", *gateway_args(addr=addr, region=region, home=home)]


def spawn_detached(command: list[str], database_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `command` in a session of its own (no signal of its parent's reaches it), appending its
    output to `log_path`, with `database_url` as `POLYCLOUD_DATABASE_URL`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "POLYCLOUD_DATABASE_URL": database_url},
            start_new_session=True,
        )


def wait_published(home: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> GatewayInfo | None:
    """Wait until `proc` publishes itself as the gateway of `home`; None when it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        info = read_info(home)
        if info is not None and info.pid == proc.pid:
            return info
        time.sleep(0.05)
    return None


def check_free(addr: str) -> None:
    """Fail early and clearly when something else listens on the gateway's address.

    Raises:
        UserError: The address cannot be bound.
    """
    host, _, port = addr.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]") or "127.0.0.1", int(port)))
        except OSError as e:
            raise UserError(f"cannot listen on {addr}: {e.strerror}") from e


def stop_pid(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM `pid` (a gateway drains, then exits), SIGKILL it after `grace_s`; quiet if already gone."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        _, alive = psutil.wait_procs([proc], timeout=grace_s)
        for straggler in alive:
            straggler.kill()
        psutil.wait_procs(alive, timeout=5)
    except psutil.NoSuchProcess:
        pass


def stop_gateway(home: Path, grace_s: float = STOP_GRACE_S) -> int | None:
    """Stop the gateway of `home`, if one runs; returns its pid (None: none ran)."""
    info = running_gateway(home, wait_s=ADOPT_WAIT_S)
    if info is None:
        return None
    stop_pid(info.pid, grace_s)
    return info.pid


class GatewayProcess:
    """The gateway of a control plane's home: `claim`, `start`, then `stop` (see the module docstring)."""

    def __init__(self, *, addr: str, database_url: str, region: str, home: Path, log: Path) -> None:
        """Describe the gateway (nothing happens before `claim`)."""
        self.addr = addr
        self.home = home
        self.database_url = database_url
        self.command = gateway_command(addr=addr, region=region, home=home)
        self.log = log
        self.pid: int | None = None
        """The gateway's process, adopted or started."""
        self._proc: subprocess.Popen[bytes] | None = None
        """The gateway when this process started it (its exit status is ours to collect)."""
        self._started = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="gateway-supervisor", daemon=True)

    def claim(self) -> bool:
        """Adopt the gateway of the home when one runs on this address (one reading another database
        is stopped, to be replaced); else make sure the address is free. Returns whether a gateway was
        adopted.

        Raises:
            ConflictError: The home's gateway runs on another address.
            UserError: Something else listens on the address.
        """
        running = running_gateway(self.home, wait_s=ADOPT_WAIT_S)
        if running is not None and running.store != store_fingerprint(self.database_url):
            log.warning(
                "the gateway of %s (pid %d) reads another database: replacing it", self.home, running.pid
            )
            stop_pid(running.pid)
            running = None
        if running is None:
            check_free(self.addr)
            return False
        if running.addr != self.addr:
            raise ConflictError(
                f"the gateway of {self.home} (pid {running.pid}) serves {running.url}, not {self.addr}: "
                f"stop it with `polycloud down`, or set POLYCLOUD_GATEWAY_ADDR={running.addr}"
            )
        self._adopt(running)
        return True

    def _same(self, running: GatewayInfo) -> bool:
        """Whether `running` is the gateway this control plane would start (address and database)."""
        return running.addr == self.addr and running.store == store_fingerprint(self.database_url)

    def _adopt(self, running: GatewayInfo) -> None:
        log.info("adopted the gateway of %s: pid %d at %s", self.home, running.pid, running.url)
        self.pid, self._proc, self._started = running.pid, None, time.monotonic()

    def start(self) -> None:
        """Start the gateway unless one was adopted, then supervise it until `stop`."""
        if self.pid is None:
            self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        self._started = time.monotonic()
        self._proc = spawn_detached(self.command, self.database_url, self.log)
        self.pid = self._proc.pid

    def alive(self) -> bool:
        """Whether the gateway process runs (collecting its exit status when it is our child)."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def _supervise(self) -> None:
        """Restart the gateway when it exits, backing off (0.5 s doubling to 30 s) if it keeps failing;
        a gateway of the home that another process started meanwhile is adopted instead."""
        delay = 0.5
        while not self._stopping.is_set():
            if not self.alive():
                log.warning("the gateway (pid %s) exited; starting one in %.1f s", self.pid, delay)
                if self._stopping.wait(delay):
                    return
                delay = min(30.0, delay * 2)
                running = running_gateway(self.home, wait_s=ADOPT_WAIT_S)
                if running is not None and self._same(running):
                    self._adopt(running)
                else:
                    self._spawn()
            elif delay > 0.5 and time.monotonic() - self._started > 30:
                delay = 0.5
            self._stopping.wait(0.5)

    def stop(self, *, terminate: bool, grace_s: float = STOP_GRACE_S) -> None:
        """Stop supervising; with `terminate` (`polycloud down`), stop the gateway too, else leave it
        serving for the next control plane to adopt."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if not terminate or self.pid is None or not self.alive():
            return
        proc = self._proc
        if proc is None:
            stop_pid(self.pid, grace_s)
            return
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

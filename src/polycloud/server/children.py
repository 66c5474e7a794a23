"""The gateway runs as a child process of the control plane, restarted if it dies."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the control plane dies, even by SIGKILL,
    so a crashed control plane never leaves a gateway holding the gateway's address."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class GatewayProcess:
    """Starts `python -m polycloud.gateway` and keeps it running until `stop()`."""

    def __init__(self, *, addr: str, database_url: str, region: str, log: Path) -> None:
        self.command = [
            sys.executable,
            "-m",
            "polycloud.gateway",
            "--addr",
            addr,
            "--database-url",
            database_url,
            "--region",
            region,
        ]
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="gateway-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )

    def _supervise(self) -> None:
        """Restart the gateway when it exits, backing off (0.5 s doubling to 30 s) if it keeps failing."""
        delay = 0.5
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                if self._stopping.wait(delay):
                    return
                delay = min(30.0, delay * 2)
                self._spawn()
            elif delay > 0.5 and proc is not None and self._uptime() > 30:
                delay = 0.5
            self._stopping.wait(0.5)

    def _uptime(self) -> float:
        return time.monotonic() - self._started

    def stop(self, grace_s: float = 10.0) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

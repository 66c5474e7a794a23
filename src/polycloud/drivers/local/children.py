"""Replica processes spawned by *this* OS process, kept so they are reaped and their exit codes known.

Children belong to the operating-system process, not to one driver object: a replica spawned through
one `LocalDriver` may exit while another driver object (another thread, another cluster) is looking,
and whoever notices first must reap it, or it lingers as a zombie. Hence one table per process,
`CHILDREN`, created empty at import and filled only by spawns. Replicas adopted from an earlier
control plane are not our children; their parent (init) reaps them and their exit codes are unknown.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

ExitCallback = Callable[[int], None]
"""Called once with the exit code (negative: killed by that signal) after the child was reaped. It
must not take a lock that a caller of `reap`/`poll` may hold (it runs in the caller's thread)."""


@dataclass
class _Child:
    popen: subprocess.Popen[bytes]
    on_exit: ExitCallback


class ChildTable:
    """The spawned children of this process that have not been reaped yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[int, _Child] = {}

    def add(self, popen: subprocess.Popen[bytes], on_exit: ExitCallback) -> None:
        """Track a freshly spawned child.

        Args:
            popen: The child.
            on_exit: Told the exit code once the child has been reaped.
        """
        with self._lock:
            self._children[popen.pid] = _Child(popen, on_exit)

    def poll(self, pid: int) -> int | None:
        """Reap child `pid` if it has exited.

        Returns:
            Its exit code once it has exited (the first caller also triggers its callback); None while
            it runs or when `pid` is not a tracked child.
        """
        with self._lock:
            child = self._children.get(pid)
            if child is None:
                return None
            code = child.popen.poll()
            if code is not None:
                del self._children[pid]
        if code is not None:
            child.on_exit(code)
        return code

    def running(self, pid: int) -> bool | None:
        """Whether child `pid` still runs (reaping it if it has exited); None when it is not our child.

        A child counts as running until it has been reaped: a killed multi-threaded process shows as a
        zombie while its threads are still exiting, and cannot be reaped yet.
        """
        with self._lock:
            if pid not in self._children:
                return None
        if self.poll(pid) is not None:
            return False
        with self._lock:
            return pid in self._children  # False: another thread reaped it just now

    def reap(self) -> None:
        """Reap every tracked child that has exited."""
        with self._lock:
            pids = list(self._children)
        for pid in pids:
            self.poll(pid)


CHILDREN = ChildTable()
"""The children of this OS process (see the module docstring for why this is process-wide)."""

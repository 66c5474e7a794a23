"""`Loop`: one background loop for every control-plane component that acts periodically.

A loop runs its step in a daemon thread every `interval_s`, or at once when woken. A failed step is
reported (`on_error`) and never ends the loop; a bug (an exception that is not a `PolycloudError`) is
logged with its traceback and the loop goes on. With a `gate`, the step runs only while the gate is
open: the loops that act on the world are gated on the leader lease, so a server that is not (or no
longer) the leader keeps its threads but does nothing, and resumes at once when it wins the lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from polycloud.errors import FencedError, PolycloudError

log = logging.getLogger(__name__)

Gate = Callable[[], bool]
"""Whether the step may run now."""


def always() -> bool:
    """The gate of a loop that always runs."""
    return True


def _log_error(name: str) -> Callable[[PolycloudError], None]:
    def report(error: PolycloudError) -> None:
        log.error("%s: %s", name, error)

    return report


class Loop:
    """Runs `step` periodically in its own thread until `stop()`."""

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        *,
        interval_s: float | Callable[[], float],
        gate: Gate = always,
        on_error: Callable[[PolycloudError], None] | None = None,
        first_delay_s: float = 0.0,
    ) -> None:
        """Create a loop; `start()` runs it.

        Args:
            name: For the thread and the logs.
            step: One pass; it should return quickly relative to `interval_s`.
            interval_s: Seconds from the start of one pass to the start of the next (or a function
                giving them before each wait, for loops whose pace changes).
            gate: The step runs only while this returns True (checked before every pass).
            on_error: Told of a pass that failed with a `PolycloudError` (default: logged). A
                `FencedError` (the lease was lost mid-pass) is only logged: the new leader acts.
            first_delay_s: Wait this long before the first pass.
        """
        self.name = name
        self._step = step
        self._interval = interval_s
        self._gate = gate
        self._on_error = on_error or _log_error(name)
        self._first_delay = first_delay_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was called."""
        return self._stop.is_set()

    def start(self) -> Loop:
        """Start the thread; returns the loop."""
        self._thread.start()
        return self

    def wake(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current pass and wait up to `timeout_s` for it."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def run_once(self) -> bool:
        """One pass, if the gate is open, with the loop's error handling; returns whether it ran."""
        if not self._gate():
            return False
        try:
            self._step()
        except FencedError as e:
            log.info("%s: pass abandoned, the leader lease was lost: %s", self.name, e)
        except PolycloudError as e:
            self._report(e)
        except Exception:  # a bug in one pass must not end the loop for good
            log.exception("%s: pass failed", self.name)
        return True

    def _report(self, error: PolycloudError) -> None:
        try:
            self._on_error(error)
        except PolycloudError as e:  # e.g. the store that would record it is down too
            log.error("%s: %s (and could not record it: %s)", self.name, error, e)

    def _run(self) -> None:
        if self._first_delay and self._stop.wait(self._first_delay):
            return
        while not self._stop.is_set():
            started = time.monotonic()
            self.run_once()
            interval = self._interval() if callable(self._interval) else self._interval
            self._wake.wait(max(0.0, interval - (time.monotonic() - started)))
            self._wake.clear()

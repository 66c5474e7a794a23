"""`Leadership`: this server's claim on the leader lease, and its heartbeat as a member of the fleet.

One thread renews (or tries to take) the lease every `renew_s` and heartbeats in the same beat. The
lease is held, as far as this process is concerned, until `renewed + lease_s - margin_s` by its own
monotonic clock, measured from *before* the renewal's transaction started: the database measured its
expiry from a later instant, so this process always stops acting before anyone else may start. A
process paused past that point (SIGSTOP, a long GC, a VM freeze) finds `holds()` false when it wakes,
and its fenced writes are refused even if a pass was in flight (`StoreCore.fenced`).

The timing follows Kubernetes' leader election, scaled down so that a new leader takes over within
five seconds of the old one's death: a 4 s lease renewed every second (Kubernetes: 15 s lease, 10 s
renew deadline, 2 s retry).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from polycloud.errors import PolycloudError
from polycloud.state import Lease, MemberInput
from polycloud.state.repositories import LeaseRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTiming:
    """How long a lease lasts and how often it is renewed (seconds)."""

    lease_s: float = 4.0
    renew_s: float = 1.0
    margin_s: float = 0.5
    """Stop acting this long before the lease could expire, for the renewal's own latency."""


class Leadership:
    """Holds or contends for the leader lease; tells loops whether they may act (`holds`)."""

    def __init__(
        self,
        store: LeaseRepository,
        me: MemberInput,
        *,
        timing: LeaseTiming | None = None,
        on_gain: Callable[[], None] = lambda: None,
    ) -> None:
        """Contend as `me` on `store` once `start()`ed; `on_gain` runs each time the lease is won."""
        self._store = store
        self.me = me
        self.timing = timing or LeaseTiming()
        self.on_gain = on_gain
        """Runs each time the lease is won (e.g. wake the loops); settable after construction."""
        self._lock = threading.Lock()
        self._epoch: int | None = None  # guarded by _lock
        self._valid_until = 0.0  # monotonic; guarded by _lock
        self._last: Lease | None = None
        self._said = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)

    # -- what loops ask ------------------------------------------------------------------------
    def holds(self) -> bool:
        """Whether this server may act as the leader right now."""
        with self._lock:
            return self._epoch is not None and time.monotonic() < self._valid_until

    def fence(self) -> tuple[str, int] | None:
        """(holder, epoch) while the lease is held, for fenced writes; None otherwise."""
        with self._lock:
            if self._epoch is None or time.monotonic() >= self._valid_until:
                return None
            return self.me.id, self._epoch

    @property
    def last_seen(self) -> Lease | None:
        """The lease as the last renewal found it (who leads, at which epoch)."""
        return self._last

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Try once at once (so a lone server leads before it serves), then keep renewing."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing, give the lease up so a successor need not wait, and leave the members."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with self._lock:
            epoch, self._epoch = self._epoch, None
        try:
            if epoch is not None:
                self._store.release_lease(self.me.id, epoch)
            self._store.leave(self.me.id)
        except PolycloudError as e:
            log.warning("could not release the leader lease (it expires by itself): %s", e)

    def beat(self) -> None:
        """Renew or contend once, and heartbeat."""
        started = time.monotonic()
        try:
            lease = self._store.acquire_lease(self.me.id, self.timing.lease_s)
        except PolycloudError as e:
            self._note(f"cannot reach the leader lease: {e}")
            return  # holds() turns false by itself once the lease time has passed
        self._take(lease, started)
        try:
            self._store.heartbeat(self.me)
        except PolycloudError as e:
            self._note(f"cannot record this server's heartbeat: {e}")

    def _take(self, lease: Lease, started: float) -> None:
        """Act on what the lease row says now: lead, keep leading, or follow."""
        self._last = lease
        mine = lease.holder == self.me.id
        with self._lock:
            gained = mine and self._epoch != lease.epoch
            lost = not mine and self._epoch is not None
            self._epoch = lease.epoch if mine else None
            self._valid_until = started + self.timing.lease_s - self.timing.margin_s if mine else 0.0
        if gained:
            log.warning("%s leads (epoch %d)", self.me.id, lease.epoch)
            self._said = ""
            self.on_gain()
        elif lost:
            log.warning("%s lost the leader lease to %s (epoch %d)", self.me.id, lease.holder, lease.epoch)
        elif not mine:
            self._note(f"following {lease.holder} (epoch {lease.epoch})")

    def _note(self, message: str) -> None:
        if message != self._said:
            log.info("%s", message)
            self._said = message

    def _run(self) -> None:
        while not self._stop.wait(self.timing.renew_s):
            self.beat()

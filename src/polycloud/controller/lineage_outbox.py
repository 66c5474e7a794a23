"""`Outbox`: delivers kept lineage events to an OpenLineage collector, oldest first, none lost.

An event is marked sent only after the collector answers 2xx; anything else (refused, timed out, 4xx,
5xx) leaves it and the ones after it for a later pass, after a backoff that doubles per failure up to
`max_backoff_s`. The outbox is the store's table, so a collector that is down, or a control plane that
restarts or changes leader, delays events but never loses them. Delivery is at least once: a crash
between the collector's answer and the mark sends that one event again (collectors key runs by id).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import httpx

from polycloud.state.repositories_runtime import LineageOutboxStore

log = logging.getLogger(__name__)
BATCH = 100
TIMEOUT_S = 10.0


class Outbox:
    """POSTs unsent events to `url` (Marquez: `http://host:5000/api/v1/lineage`)."""

    def __init__(
        self, store: LineageOutboxStore, url: str, *, interval_s: float, max_backoff_s: float | None = None
    ) -> None:
        self.store = store
        self.url = url
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s if max_backoff_s is not None else min(60.0, 20 * interval_s)
        self.failures = 0
        self._next_try = 0.0
        self._http = httpx.Client(timeout=TIMEOUT_S, headers={"Content-Type": "application/json"})

    def close(self) -> None:
        self._http.close()

    def backoff_s(self) -> float:
        """The wait after `failures` failures in a row."""
        return min(self.max_backoff_s, self.interval_s * 2.0 ** max(0, self.failures - 1))

    def deliver(self) -> int:
        """Send what is due, in order, until done or the first failure; returns how many were sent."""
        if time.monotonic() < self._next_try:
            return 0
        sent = 0
        while batch := self.store.unsent_lineage_events(BATCH):
            for event in batch:
                error = self._post(event.payload)
                if error is not None:
                    self._failed(event.id, error)
                    return sent
                self.store.mark_lineage_sent(event.id)
                sent += 1
            self.failures = 0
        return sent

    def _post(self, payload: dict[str, object]) -> str | None:
        try:
            response = self._http.post(self.url, json=payload)
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    def _failed(self, event_id: int, error: str) -> None:
        self.failures += 1
        wait = self.backoff_s()
        self._next_try = time.monotonic() + wait
        next_at = datetime.now(UTC) + timedelta(seconds=wait)
        self.store.mark_lineage_failed(event_id, error, next_at)
        log.warning("lineage: collector %s: %s (retry in %.1f s)", self.url, error, wait)

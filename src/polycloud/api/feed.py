"""The dashboard's live feed: one thread samples the fleet and pushes it to every open page.

Whatever the number of pages, the fleet is read once per tick (every second while a page listens, every
`idle_every_s` otherwise, so the charts have a history when a page opens). Each sample goes into a ring
buffer of per-cluster and per-service series and, with the events stored since the last tick, onto the
queue of every subscriber; a subscriber that does not keep up loses its oldest messages, never blocks
the feed. Nothing here touches the gateway: its load reports are read from the state store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from polycloud.errors import PolycloudError, TransientError
from polycloud.loops import Loop
from polycloud.services.context import TokenRecord
from polycloud.services.overview import visible, workload_names

log = logging.getLogger(__name__)

Message = tuple[str, dict[str, Any]]
"""(SSE event name, data)."""
CLOSED: Message = ("closed", {})
SERIES_FIGURES = ("rps", "errorRate", "p50Ms", "p99Ms", "promptTokensPerS", "completionTokensPerS")


@dataclass(eq=False)
class Subscription:
    who: TokenRecord
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(maxsize=16))

    def offer(self, message: Message) -> None:
        """Called on the subscriber's loop: enqueue, dropping the oldest message when full."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(message)


class Feed:
    """Samples with `sample()` (the overview) and `events_after(id)` (new events as JSON)."""

    def __init__(
        self,
        sample: Callable[[], dict[str, Any]],
        events_after: Callable[[int], list[dict[str, Any]]],
        *,
        every_s: float = 1.0,
        idle_every_s: float = 5.0,
        keep: int = 900,
    ) -> None:
        self._sample, self._events_after = sample, events_after
        self._every_s, self._idle_every_s = every_s, idle_every_s
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._loop = Loop("dashboard-feed", self._pass, interval_s=self._pace, on_error=self._failed)
        self._started = False
        self._latest: dict[str, Any] | None = None
        self._last_event_id: int | None = None
        self._times: deque[float] = deque(maxlen=keep)
        self._points: deque[dict[str, dict[str, tuple[float, ...]]]] = deque(maxlen=keep)
        self.stopping: Callable[[], bool] = lambda: False
        """Set by the server: true once it is shutting down, so that open streams end at once."""

    # ------------------------------------------------------------------ subscribers (event loop)

    @property
    def closed(self) -> bool:
        return self._loop.stopping

    def subscribe(self, who: TokenRecord) -> Subscription:
        """A queue of this caller's messages, until `unsubscribe` (TransientError once closed)."""
        if self.closed:
            raise TransientError("the control plane is shutting down")
        sub = Subscription(who, asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        self.start()
        self._loop.wake()  # a page that just opened gets a fresh sample now, not in 5 s
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def latest(self, who: TokenRecord, max_age_s: float | None = None) -> dict[str, Any] | None:
        """The last sample as `who` may see it; None before the first, or when older than `max_age_s`."""
        with self._lock:
            view, at = self._latest, self._times[-1] if self._times else 0.0
        if view is None or (max_age_s is not None and time.time() - at > max_age_s):
            return None
        return visible(view, who)

    def series(self, who: TokenRecord) -> dict[str, Any]:
        """The ring buffer as columns: `t` (unix seconds), then per cluster and per service, each
        figure's values aligned with `t` (null where it had no sample)."""
        with self._lock:
            times, points = list(self._times), list(self._points)
        allowed: set[str] | None = None
        if who.project is not None:
            allowed = workload_names(visible(self._latest, who)) if self._latest is not None else set()
        out: dict[str, Any] = {"t": times, "clusters": {}, "services": {}}
        for group in ("clusters", "services"):
            names = sorted({n for p in points for n in p.get(group, {})})
            if group == "services" and allowed is not None:
                names = [n for n in names if n in allowed]
            for name in names:
                values = [p.get(group, {}).get(name) for p in points]
                out[group][name] = {
                    figure: [v[i] if v is not None else None for v in values]
                    for i, figure in enumerate(SERIES_FIGURES)
                }
        return out

    # ---------------------------------------------------------------------------- the sampler

    def start(self) -> None:
        """Start sampling (the server does at start, so that charts have a history when a page opens)."""
        with self._lock:
            if self._started or self._loop.stopping:
                return
            self._started = True
        self._loop.start()

    def close(self) -> None:
        """End every open stream and stop sampling."""
        self._loop.stop(timeout_s=0)
        self._broadcast(lambda _sub: CLOSED)

    def _pass(self) -> None:
        if self.stopping():
            self.close()
            return
        self.tick()

    def _pace(self) -> float:
        with self._lock:
            return self._every_s if self._subs else self._idle_every_s

    @staticmethod
    def _failed(error: PolycloudError) -> None:  # the store is briefly unreachable: try again next tick
        log.warning("dashboard feed could not sample the fleet: %s", error)

    def tick(self) -> None:
        """Take one sample and push it (and any new events) to every subscriber."""
        view = self._sample()
        now = time.time()
        point = {
            group: {row["name"]: tuple(row.get(f) for f in SERIES_FIGURES) for row in view[group]}
            for group in ("clusters", "services")
        }
        events: list[dict[str, Any]] = []
        if self._last_event_id is None:
            self._last_event_id = int(view["lastEventId"])
        elif view["lastEventId"] > self._last_event_id:
            events = self._events_after(self._last_event_id)
            self._last_event_id = max([self._last_event_id] + [int(e["id"]) for e in events])
        with self._lock:
            self._times.append(round(now, 3))
            self._points.append(point)
            self._latest = view
        self._broadcast(lambda sub: ("overview", visible(view, sub.who)))
        for event in events:
            self._broadcast(partial(_event_for, event=event, view=view))

    def _broadcast(self, make: Callable[[Subscription], Message | None]) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            message = make(sub)
            if message is not None:
                with contextlib.suppress(RuntimeError):  # its loop has closed: the page is gone
                    sub.loop.call_soon_threadsafe(sub.offer, message)


def _event_for(sub: Subscription, *, event: dict[str, Any], view: dict[str, Any]) -> Message | None:
    """The event as a message for `sub`; None when its token may not see it."""
    if sub.who.project is None or event.get("workload") in workload_names(visible(view, sub.who)):
        return ("event", event)
    return None

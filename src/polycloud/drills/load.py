"""Open-loop load: requests leave on a fixed arrival schedule, whatever earlier answers are doing.

A closed-loop client (send, wait, send again) slows down exactly when the server does, and so hides the
slow period from its own statistics ("coordinated omission"). Here arrival `i` is due at `i / rps`
seconds after the start; a request that has to wait for a free slot (concurrency is bounded by
`max_in_flight`) or for a busy event loop still has its latency measured from its *scheduled* time, so
any delay the client suffers shows up in the figures instead of vanishing.

`OpenLoop` takes the clock and the sender as parameters: tests drive it with a fake clock and a fake
sender; `HttpSender` posts one fixed request body through aiohttp.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import aiohttp

from polycloud.drills.timeline import Sample

CLUSTER_HEADER = "x-polycloud-cluster"
TRIED_HEADER = "x-polycloud-tried"


class Outcome(NamedTuple):
    """What one request got."""

    status: int
    """Its HTTP status, 0 for none."""
    cluster: str | None = None
    """The cluster that served it (`x-polycloud-cluster`)."""
    tried: tuple[str, ...] = ()
    """Clusters tried for it that did not give the answer (`x-polycloud-tried`)."""


Sender = Callable[[], Awaitable[Outcome]]


def arrival_times(rps: float, duration_s: float) -> list[float]:
    """The open-loop schedule: `i / rps` for every arrival strictly before `duration_s`.

    Raises:
        ValueError: when `rps` or `duration_s` is not positive.
    """
    if rps <= 0 or duration_s <= 0:
        raise ValueError(f"rps and duration must be positive, not {rps} and {duration_s}")
    count = math.ceil(rps * duration_s - 1e-9)
    return [i / rps for i in range(count)]


class Clock(Protocol):
    """Where a drill reads the time and waits: the event loop's clock, or a fake one in tests."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once `now()` has reached `when` (at once if it already has)."""
        ...


class LoopClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        """`loop.time()`."""
        return asyncio.get_running_loop().time()

    async def sleep_until(self, when: float) -> None:
        """Sleep for whatever is left until `when`."""
        delay = when - self.now()
        if delay > 0:
            await asyncio.sleep(delay)


class OpenLoop:
    """Fires `send` on the open-loop schedule with at most `max_in_flight` requests outstanding."""

    def __init__(self, rps: float, duration_s: float, *, max_in_flight: int = 512, clock: Clock) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.schedule = arrival_times(rps, duration_s)
        self.max_in_flight = max_in_flight
        self.clock = clock

    async def run(self, send: Sender, start: float) -> list[Sample]:
        """Send every scheduled request (arrival times counted from `start` on the clock) and wait for
        every answer. Returns one sample per request, in the order they were scheduled; times are
        seconds since `start`."""
        slots = asyncio.Semaphore(self.max_in_flight)
        samples: list[Sample | None] = [None] * len(self.schedule)

        async def one(index: int, scheduled: float) -> None:
            async with slots:
                status, cluster, tried = await send()
            samples[index] = Sample(scheduled, self.clock.now() - start, status, cluster, tried)

        tasks = []
        for index, scheduled in enumerate(self.schedule):
            await self.clock.sleep_until(start + scheduled)
            tasks.append(asyncio.create_task(one(index, scheduled)))
        await asyncio.gather(*tasks)
        return [s for s in samples if s is not None]


class HttpSender:
    """Posts one fixed JSON body to `url` on a pooled aiohttp session; never raises for a failed call."""

    def __init__(self, session: aiohttp.ClientSession, url: str, body: bytes, timeout_s: float) -> None:
        self._session = session
        self._url = url
        self._body = body
        self._headers = {"content-type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def __call__(self) -> Outcome:
        """One request: its status, serving cluster and clusters tried; status 0 when no answer came."""
        try:
            async with self._session.post(
                self._url, data=self._body, headers=self._headers, timeout=self._timeout
            ) as response:
                await response.read()
                tried = response.headers.get(TRIED_HEADER)
                return Outcome(
                    response.status,
                    response.headers.get(CLUSTER_HEADER),
                    tuple(tried.split(",")) if tried else (),
                )
        except (aiohttp.ClientError, TimeoutError):
            return Outcome(0)

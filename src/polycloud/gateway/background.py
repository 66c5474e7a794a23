"""The gateway's two background loops: route refreshing and active health checking.

`RouteRefresher` calls `RouteSource.snapshot` in a worker thread every `refresh_interval_s` and applies
the table on the event loop, so the database is never touched on the request path and the registry
needs no locks. A failing source is logged (once per distinct message) and the last table stays.

`HealthChecker` sends `GET /v2/health/ready` to every tracked replica every `health_interval_s`, each
check on its own (a slow replica never delays the others' checks): a 200 marks it healthy and feeds its
latency EWMA; any other answer or a refused connection marks it unhealthy until a later check passes. A
replica that comes back is measured afresh (its EWMA and failure count start over), so a slow answer
while it was restarting does not keep traffic away from it.

Timeouts are judged against the replica's own normal, so that a replica that accepts connections and
never answers (a frozen process, a network black hole) is found in about a second while a slow one is
not: a check's limit is 3 × what its checks usually take (`Upstream.health_ms`, which follows a slower
answer at once), at least `health_timeout_s` (300 ms) and at most `health_timeout_max_s` (5 s). A check
still unanswered at its limit counts one timeout, and one more at every later round it is still
unanswered; `unhealthy_after_timeouts` (2) in a row mark the replica unhealthy, as `silent` (it may be
slow rather than gone). The check itself waits on up to the cap: an answer after the limit still
counts, clears the timeouts and teaches the limit, so a replica that became slow (a brown-out, a far
cluster) is unhealthy for at most a round, and never again at that speed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from polycloud.errors import PolycloudError
from polycloud.gateway.forwarding import Failure, Forwarder, Reply
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.routes import RouteSource, RouteTable
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.upstreams import Upstream, UpstreamRegistry

log = logging.getLogger(__name__)

HEALTH_PATH = "/v2/health/ready"


class RouteRefresher:
    """Keeps the registry in step with a route source."""

    def __init__(
        self,
        source: RouteSource,
        registry: UpstreamRegistry,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        on_table: Callable[[RouteTable], None] | None = None,
    ) -> None:
        """Create the refresher; `refresh` once, then `run` as a task. `on_table` is given each new
        table after the registry (on the event loop): the feature flags follow it."""
        self._source = source
        self._on_table = on_table
        self._registry = registry
        self._interval = settings.refresh_interval_s
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-routes")
        self._last_error: str | None = None

    async def refresh(self) -> bool:
        """Read the source once and apply its table; False when the source failed."""
        loop = asyncio.get_running_loop()
        try:
            table = await loop.run_in_executor(self._executor, self._source.snapshot)
        except PolycloudError as e:
            message = str(e)
            if message != self._last_error:
                log.warning("cannot read routes (keeping the last table): %s", message)
                self._last_error = message
            return False
        if self._last_error is not None:
            log.info("routes readable again")
            self._last_error = None
        if self._registry.apply(table):
            self._metrics.routes_version.set(self._registry.version)
            if self._on_table is not None:
                self._on_table(table)
        return True

    async def run(self) -> None:
        """Refresh forever, every interval (cancel the task to stop)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    def close(self) -> None:
        """Let go of the worker thread (a read still running finishes on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


HEALTH_FACTOR = 3.0
"""A health check's limit in multiples of what the replica's checks usually take."""


class HealthChecker:
    """Checks every replica's readiness on a fixed period."""

    def __init__(self, registry: UpstreamRegistry, forwarder: Forwarder, settings: GatewaySettings) -> None:
        """Create the checker; `run` it as a task."""
        self._registry = registry
        self._forwarder = forwarder
        self._interval = settings.health_interval_s
        self._floor = settings.health_timeout_s
        self._cap = max(settings.health_timeout_max_s, settings.health_timeout_s)
        self._strikes = settings.unhealthy_after_timeouts
        self._alpha = settings.ewma_alpha
        self._checks: dict[Upstream, asyncio.Task[bool]] = {}
        """The check under way of each replica (one at a time)."""
        self._overdue: set[Upstream] = set()
        """Replicas whose check under way has outlived its limit."""

    def limit_s(self, upstream: Upstream) -> float:
        """How long a check of `upstream` may take before it counts as timed out."""
        usual = upstream.health_ms
        if usual is None:
            return self._floor
        return min(self._cap, max(self._floor, HEALTH_FACTOR * usual / 1000.0))

    async def check(self, upstream: Upstream) -> bool:
        """Check one replica and record the result; returns whether it is healthy afterwards.

        Past its limit the check counts a timeout and waits on (up to `health_timeout_max_s`): a late
        answer still decides.
        """
        limit = self.limit_s(upstream)
        probe = asyncio.ensure_future(self._forwarder.probe(upstream, HEALTH_PATH, self._cap))
        try:
            done, _ = await asyncio.wait({probe}, timeout=limit)
            if not done:
                self._overdue.add(upstream)
                self._timed_out(upstream, limit)
                await probe
        finally:
            self._overdue.discard(upstream)
            probe.cancel()  # no-op once it is done; else this check was cancelled
        self._record(upstream, probe.result())
        return upstream.healthy

    def sweep(self) -> None:
        """One round: start a check of every replica without one under way, and count one more timeout
        for each whose check under way has outlived its limit."""
        for upstream in self._registry.upstreams():
            if upstream in self._checks:
                if upstream in self._overdue:
                    self._timed_out(upstream, self.limit_s(upstream))
                continue
            task = asyncio.create_task(self.check(upstream), name=f"gateway-health-{upstream.id}")
            self._checks[upstream] = task
            task.add_done_callback(partial(self._finished, upstream))

    async def run(self) -> None:
        """Check forever, one round per interval (cancel the task to stop; checks under way stop too)."""
        try:
            while True:
                self.sweep()
                await asyncio.sleep(self._interval)
        finally:
            for task in list(self._checks.values()):
                task.cancel()

    def _finished(self, upstream: Upstream, task: asyncio.Task[bool]) -> None:
        if self._checks.get(upstream) is task:
            del self._checks[upstream]

    def _timed_out(self, upstream: Upstream, limit: float) -> None:
        upstream.health_timeouts += 1
        if upstream.health_timeouts >= self._strikes and upstream.silence():
            log.info(
                "replica %s (%s/%s) is unhealthy: %d health checks in a row got no answer within %.3g s",
                upstream.id,
                upstream.service,
                upstream.cluster,
                upstream.health_timeouts,
                limit,
            )

    def _record(self, upstream: Upstream, outcome: Reply | Failure) -> None:
        """Take a check's outcome: healthy on 200 (and measured), unhealthy on anything else."""
        healthy = not isinstance(outcome, Failure) and outcome.status == 200
        if healthy != upstream.healthy:
            log.info(
                "replica %s (%s/%s) is %s",
                upstream.id,
                upstream.service,
                upstream.cluster,
                "healthy" if healthy else f"unhealthy: {_describe(outcome)}",
            )
        if isinstance(outcome, Reply):
            usual, took = upstream.health_ms, outcome.elapsed_ms  # slower: at once; faster: an EWMA
            upstream.health_ms = (
                took if usual is None or took > usual else usual + self._alpha * (took - usual)
            )
        if healthy and not upstream.healthy:
            upstream.recovered()  # measured afresh: this probe may have waited out a restart
        elif healthy and isinstance(outcome, Reply):
            upstream.observe(outcome.elapsed_ms, self._alpha)
        timed_out = isinstance(outcome, Failure) and outcome.kind == "timeout"
        upstream.healthy = healthy
        upstream.silent = timed_out  # no answer even by the cap: maybe slow, maybe gone
        upstream.health_timeouts = upstream.health_timeouts if timed_out else 0


def _describe(outcome: Reply | Failure) -> str:
    return outcome.message if isinstance(outcome, Failure) else f"answered {outcome.status}"

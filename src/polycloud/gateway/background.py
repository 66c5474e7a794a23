"""The gateway's two background loops: route refreshing and active health checking.

`RouteRefresher` calls `RouteSource.snapshot` in a worker thread every `refresh_interval_s` and applies
the table on the event loop, so the database is never touched on the request path and the registry
needs no locks. A failing source is logged (once per distinct message) and the last table stays.

`HealthChecker` sends `GET /v2/health/ready` to every tracked replica at once every
`health_interval_s`: a 200 marks it healthy and feeds its latency EWMA; anything else marks it unhealthy
until a later check passes. A replica that comes back is measured afresh (its EWMA and failure count
start over), so a slow answer while it was restarting does not keep traffic away from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from polycloud.errors import PolycloudError
from polycloud.gateway.forwarding import Failure, Forwarder, Reply
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.routes import RouteSource
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
    ) -> None:
        """Create the refresher; `refresh` once, then `run` as a task."""
        self._source = source
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
        return True

    async def run(self) -> None:
        """Refresh forever, every interval (cancel the task to stop)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    def close(self) -> None:
        """Let go of the worker thread (a read still running finishes on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class HealthChecker:
    """Checks every replica's readiness on a fixed period."""

    def __init__(self, registry: UpstreamRegistry, forwarder: Forwarder, settings: GatewaySettings) -> None:
        """Create the checker; `run` it as a task."""
        self._registry = registry
        self._forwarder = forwarder
        self._interval = settings.health_interval_s
        self._timeout = settings.health_timeout_s
        self._alpha = settings.ewma_alpha

    async def check(self, upstream: Upstream) -> bool:
        """Check one replica and record the result; returns whether it is healthy."""
        outcome = await self._forwarder.probe(upstream, HEALTH_PATH, self._timeout)
        healthy = not isinstance(outcome, Failure) and outcome.status == 200
        if healthy != upstream.healthy:
            log.info(
                "replica %s (%s/%s) is %s",
                upstream.id,
                upstream.service,
                upstream.cluster,
                "healthy" if healthy else f"unhealthy: {_describe(outcome)}",
            )
        if healthy and not upstream.healthy:
            upstream.recovered()  # measured afresh: this probe may have waited out a restart
        elif healthy and not isinstance(outcome, Failure):
            upstream.observe(outcome.elapsed_ms, self._alpha)
        upstream.healthy = healthy
        return healthy

    async def check_all(self) -> None:
        """Check every tracked replica at once."""
        upstreams = list(self._registry.upstreams())
        if upstreams:
            await asyncio.gather(*(self.check(u) for u in upstreams))

    async def run(self) -> None:
        """Check forever, one round per interval (cancel the task to stop)."""
        while True:
            start = time.monotonic()
            await self.check_all()
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - start)))


def _describe(outcome: Reply | Failure) -> str:
    return outcome.message if isinstance(outcome, Failure) else f"answered {outcome.status}"

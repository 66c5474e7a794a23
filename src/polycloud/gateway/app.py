"""`create_app`: the gateway as an ASGI application, and its life cycle (ASGI lifespan).

Paths served:

    GET  /v2/models/{name}[/versions/{v}]           forwarded to a replica of service `name`
    GET  /v2/models/{name}[/versions/{v}]/ready     forwarded
    POST /v2/models/{name}[/versions/{v}]/infer     forwarded
    GET  /v2                                        the gateway's own server metadata
    GET  /v2/health/live                            200 while the process serves
    GET  /v2/health/ready                           200 once routes are loaded; 503 before, and while
                                                    draining
    GET  /metrics                                   Prometheus text format
    POST /v1/chat/completions, /v1/completions,     OpenAI API, routed by the body's `model`, answers
         /v1/embeddings                             streamed through (`polycloud.gateway.llm`)
    GET  /v1/models                                 the OpenAI services the caller may use
    POST /ofrep/v1/evaluate/flags[/{key}]           feature flags over OFREP (`polycloud.gateway.ofrep`)
    GET  /ofrep/v1/configuration

On lifespan startup the gateway opens its connection pool, reads the routes once, and starts the
route refresher, the health checker and (given a load sink) the load reporter; on shutdown it stops
them and closes the pool. Run it with uvicorn (`python -m polycloud.gateway`) or any ASGI server that
runs the lifespan protocol.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from contextlib import suppress

from polycloud import __version__
from polycloud.catalog import Catalog, load_catalog
from polycloud.gateway.background import HealthChecker, RouteRefresher
from polycloud.gateway.ejection import make_ejection_policy
from polycloud.gateway.flagboard import FlagBoard
from polycloud.gateway.flagcount import FlagSink, FlagWindow
from polycloud.gateway.flagrouting import FlagRouter, rewritten
from polycloud.gateway.forwarding import Forwarder
from polycloud.gateway.keyload import KeyWindow
from polycloud.gateway.keys import KeyGuard, KeySource
from polycloud.gateway.llm import LlmFront
from polycloud.gateway.locality import Locator
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.ofrep import PREFIX as OFREP
from polycloud.gateway.ofrep import OfrepFront, facts_of
from polycloud.gateway.policies import make_routing_policy
from polycloud.gateway.proxy import Proxy
from polycloud.gateway.reporting import (
    LoadReporter,
    LoadSink,
    LoadWindow,
    RecordingMetrics,
    default_gateway_id,
)
from polycloud.gateway.routes import RouteSource, RouteTable
from polycloud.gateway.selecting import Selector
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.tracing import GatewayTracer
from polycloud.gateway.upstreams import UpstreamRegistry
from polycloud.gateway.wire import Receive, Scope, Send, send_bytes, send_error, send_json

log = logging.getLogger(__name__)

MODELS = "/v2/models/"
FIRST_ROUTES_TIMEOUT_S = 5.0
"""How long startup waits for the first route table before serving without one (not ready yet)."""


class GatewayApp:
    """The gateway's ASGI application; build it with `create_app`."""

    def __init__(
        self,
        source: RouteSource,
        settings: GatewaySettings,
        catalog: Catalog | None,
        rng: random.Random,
        load: tuple[LoadSink, str] | None = None,
        upstream_tls: ssl.SSLContext | None = None,
    ) -> None:
        """Assemble the parts; see `create_app` (`load` is its (load_sink, gateway_id))."""
        self.settings = settings
        window = LoadWindow() if load is not None else None
        flags = FlagWindow() if load is not None and isinstance(load[0], FlagSink) else None
        self.metrics = GatewayMetrics() if window is None else RecordingMetrics(window, flags)
        locator = Locator(catalog)
        self.registry = UpstreamRegistry(locator, locator.point(settings.region))
        self.forwarder = Forwarder(settings, upstream_tls)
        policy = make_routing_policy(settings, locator, rng)
        self.proxy = Proxy(
            settings,
            self.registry,
            Selector(settings, policy),
            self.forwarder,
            make_ejection_policy(settings),
            locator,
            self.metrics,
        )
        self.metrics.in_flight.set_function(lambda: self.proxy.in_flight)
        self.llm = LlmFront(
            settings, self.registry, self.proxy, self.forwarder, locator, self.metrics, self.proxy.revisions
        )
        self.ofrep = OfrepFront(FlagBoard(self.metrics), settings)
        self.router = FlagRouter(self.ofrep)
        self.refresher = RouteRefresher(source, self.registry, settings, self.metrics, self._follow)
        self.health = HealthChecker(self.registry, self.forwarder, settings)
        self.reporter: LoadReporter | None = None
        """Reports load per (service, cluster) every second; None without a load sink."""
        if load is not None and window is not None:
            self.proxy.key_window = KeyWindow()
            self.reporter = LoadReporter(
                load[0],
                self.registry,
                window,
                load[1],
                revisions=self.proxy.revisions,
                keys=self.proxy.key_window,
                flags=flags,
            )
        self.draining = False
        """Set by `drain()`: readiness answers 503 so that load balancers stop sending."""
        self._tasks: list[asyncio.Task[None]] = []
        self.keys: KeyGuard | None = None
        """Inference keys, rate limits and quotas (`polycloud.gateway.keys`); None: every service open."""

    def _follow(self, table: RouteTable) -> None:
        """Take a new route table's flags and the facts evaluation contexts get from it."""
        self.ofrep.board.apply(table.flags)
        self.ofrep.facts = facts_of(self.settings.region, table.services, table.clusters)
        self.router.follow(table.services)

    def drain(self) -> None:
        """Start draining: report not ready; requests are still served until the server stops."""
        self.draining = True

    @property
    def ready(self) -> bool:
        """Routes are loaded and the gateway is not draining."""
        return self.registry.loaded and not self.draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith(MODELS):
            service, allowed = _model_route(path)
            if service is None:
                await send_error(send, 404, f"no such path {path!r}", [])
            elif method != allowed:
                await send_error(
                    send, 405, f"{path} takes {allowed}, not {method}", [(b"allow", allowed.encode())]
                )
            elif self.keys is not None and (denial := self.keys.guard(service, scope)) is not None:
                await send_error(send, denial.status, denial.message, denial.headers)
            else:
                raw: bytes = scope.get("raw_path") or path.encode()
                chosen = self.router.route(service, scope)
                revision = None
                if isinstance(chosen, int):
                    revision = chosen  # a revision of this service: same path, its replicas first
                elif chosen != service and (moved := rewritten(raw, service, chosen)) is not None:
                    service, raw = chosen, moved
                query: bytes = scope.get("query_string", b"")
                target = (raw + b"?" + query if query else raw).decode("latin-1")
                await self.proxy.handle(scope, receive, send, service, target, revision)
            return
        if path.startswith("/v1/"):
            await self.llm.handle(scope, receive, send)
            return
        if path.startswith(OFREP):
            await self.ofrep.handle(scope, receive, send)
            return
        if method != "GET":
            await send_error(send, 405, f"{path} takes GET, not {method}", [(b"allow", b"GET")])
        elif path == "/v2/health/live":
            await send_json(send, 200, {"live": True})
        elif path == "/v2/health/ready":
            await send_json(send, 200 if self.ready else 503, {"ready": self.ready})
        elif path == "/metrics":
            await send_bytes(send, 200, self.metrics.render(), self.metrics.content_type.encode())
        elif path == "/v2":
            await send_json(
                send, 200, {"name": "polycloud-gateway", "version": __version__, "extensions": []}
            )
        else:
            await send_error(send, 404, f"no such path {path!r}", [])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        """Open the pool, load the first routes (waiting at most a few seconds) and start the loops."""
        await self.forwarder.open()
        try:
            await asyncio.wait_for(self.refresher.refresh(), FIRST_ROUTES_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "no routes after %.0f s; serving without them until they come", FIRST_ROUTES_TIMEOUT_S
            )
        if self.keys is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.keys.sync(), FIRST_ROUTES_TIMEOUT_S)
            self._tasks.append(asyncio.create_task(self.keys.run(), name="gateway-keys"))
        self._tasks += [
            asyncio.create_task(self.refresher.run(), name="gateway-routes"),
            asyncio.create_task(self.health.run(), name="gateway-health"),
        ]
        if self.reporter is not None:
            self._tasks.append(asyncio.create_task(self.reporter.run(), name="gateway-load"))
        for task in self._tasks:
            task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        """Stop the loops and close the pool."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.refresher.close()
        if self.keys is not None:
            self.keys.close()
        if self.reporter is not None:
            self.reporter.close()
        await self.forwarder.close()


def _report_crash(task: asyncio.Task[None]) -> None:
    """Log a background loop that stopped on an unexpected error (its failures are otherwise silent)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background loop %s stopped", task.get_name(), exc_info=task.exception())


def _model_route(path: str) -> tuple[str | None, str]:
    """The service named by an OIP model path and the method it takes; (None, "") for another path."""
    name, _, tail = path[len(MODELS) :].partition("/")
    if not name:
        return None, ""
    if tail.startswith("versions/"):
        version, _, tail = tail[len("versions/") :].partition("/")
        if not version:
            return None, ""
    if tail == "infer":
        return name, "POST"
    if tail in ("", "ready"):
        return name, "GET"
    return None, ""


def create_app(
    source: RouteSource,
    settings: GatewaySettings,
    *,
    catalog: Catalog | None = None,
    rng: random.Random | None = None,
    load_sink: LoadSink | None = None,
    gateway_id: str | None = None,
    keys: KeySource | None = None,
    tracer: GatewayTracer | None = None,
    upstream_tls: ssl.SSLContext | None = None,
) -> GatewayApp:
    """Build the gateway's ASGI application.

    Args:
        source: Where routes come from; read from a worker thread, never on the request path.
        settings: Routing, retry, ejection and admission knobs.
        catalog: Region coordinates and measured RTTs for locality; the shipped catalog by default.
        rng: Randomness for the routing policy (seed it for repeatable tests).
        load_sink: Where to report load per (service, cluster) every second (from a worker thread);
            None reports nothing.
        gateway_id: This gateway's id in load reports; `host:pid` by default.
        keys: Where inference keys come from (and usage goes to); None leaves every service open.
        tracer: Spans (and request logs) per request; None traces nothing.
        upstream_tls: The context `https://` replicas are called with (the gateway's fleet certificate,
            `polycloud.gateway.certificates`); None: the system's default verifying context.

    Raises:
        UserError: `settings` names an unknown routing or ejection policy.
    """
    load = None if load_sink is None else (load_sink, gateway_id or default_gateway_id())
    app = GatewayApp(source, settings, catalog or load_catalog(), rng or random.Random(), load, upstream_tls)
    app.keys = app.llm.keys = app.ofrep.keys = None if keys is None else KeyGuard(keys)
    app.proxy.tracer = tracer
    return app

"""Fixtures for the gateway tests: stub replicas and gateways served in threads, an HTTP client.

Every server started through these fixtures is stopped at the end of its test.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from polycloud.gateway import GatewayApp, GatewaySettings, RouteSource, StaticRouteSource, create_app

from .support import ServerThread, StubReplica, wait_until

FAST = {"refresh_interval_s": 0.05, "health_interval_s": 0.1, "health_timeout_s": 0.5}
"""Settings that make tests follow changes quickly."""


@dataclass
class Stub:
    """A stub replica and the server it runs on."""

    replica: StubReplica
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self, *, force: bool = False) -> None:
        self.server.stop(force=force)

    def restart(self) -> None:
        """Serve the same stub on the same port again."""
        self.server = ServerThread(self.replica, port=self.server.port).start()


@dataclass
class Gateway:
    """A gateway app, its server, and the source it reads."""

    app: GatewayApp
    server: ServerThread
    source: StaticRouteSource | RouteSource

    @property
    def url(self) -> str:
        return self.server.url

    def wait_version(self, version: int) -> None:
        """Wait until the gateway has applied at least `version` route tables."""
        wait_until(lambda: self.app.registry.version >= version, what=f"route table version {version}")


MakeStub = Callable[..., Stub]
MakeGateway = Callable[..., Gateway]


@pytest.fixture
def make_stub() -> Iterator[MakeStub]:
    """`make_stub(cluster, model="m")` starts a stub replica."""
    stubs: list[Stub] = []

    def make(cluster: str, model: str = "m") -> Stub:
        replica = StubReplica(cluster, model)
        stub = Stub(replica, ServerThread(replica).start())
        stubs.append(stub)
        return stub

    yield make
    for stub in stubs:
        stub.replica.release()
        stub.stop(force=True)


@pytest.fixture
def make_gateway() -> Iterator[MakeGateway]:
    """`make_gateway(source, **settings)` starts a gateway (fast refresh and health checks by default)."""
    gateways: list[Gateway] = []

    def make(source: RouteSource, **overrides: Any) -> Gateway:
        settings = GatewaySettings(**{**FAST, **overrides})
        app = create_app(source, settings, rng=random.Random(7))
        gateway = Gateway(app, ServerThread(app, lifespan="on").start(), source)
        gateways.append(gateway)
        return gateway

    yield make
    for gateway in gateways:
        gateway.server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A plain HTTP client (no proxies from the environment)."""
    with httpx.Client(trust_env=False, timeout=30.0) as c:
        yield c

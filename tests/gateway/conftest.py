"""Fixtures for the gateway tests: stub replicas and gateways served in threads, an HTTP client.

Every server started through these fixtures is stopped at the end of its test.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from polycloud.gateway import GatewaySettings, RouteSource, create_app
from polycloud.gateway.running import SERVER_OPTIONS

from .support import FAST, Gateway, MakeGateway, MakeStub, ServerThread, Stub, StubReplica
from .test_gateway_e2e import Processes


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
        server = ServerThread(app, lifespan="on", **SERVER_OPTIONS)  # as `python -m polycloud.gateway`
        gateway = Gateway(app, server.start(), source)
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


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Child processes (`python -m ...`) on pre-bound ports, killed at the end of the test."""
    procs = Processes(tmp_path)
    yield procs
    procs.kill_all()

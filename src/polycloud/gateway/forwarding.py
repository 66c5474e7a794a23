"""The upstream call: pooled keep-alive connections, and outcomes as values instead of exceptions.

The client is `polycloud.proxying.connections` (httptools over asyncio protocols): it keeps up to
`max_connections_per_replica` connections per replica and closes idle ones before the replica's own
keep-alive (5 s) would. It replaced aiohttp's client, which cost ~115 µs of CPU per request against
~45 µs (see that module); aiohttp itself had replaced httpx.AsyncClient, which made ~260 requests/s
(p99 430 ms) where aiohttp made ~3,700 (p99 16 ms) on the same loop and upstream.

`Forwarder.send` returns a `Reply` (any HTTP status) or a `Failure` (`connect`: the replica could not
be reached; `timeout`: no answer within the attempt's time; `broken`: the connection failed mid-way),
so the retry loop reads as data, not as exception handling. The client's exceptions stop here.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Literal

from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.upstreams import Upstream
from polycloud.proxying.connections import Broken, ConnectFailed, ConnectionPools, Streamed

FailureKind = Literal["connect", "timeout", "broken"]

DROP_REQUEST_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
        b"x-request-id",
        b"x-polycloud-timeout-ms",
        b"traceparent",
    }
)
"""Client headers (names lower-case, as ASGI has them) not forwarded: hop-by-hop ones, those the client
sets (host, content-length), and those the gateway sets (a client's `traceparent` is continued by the
gateway's own span, whose `traceparent` goes on)."""

DROP_RESPONSE_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"date",
        b"server",
        b"x-request-id",
        b"x-polycloud-cluster",
        b"x-polycloud-tried",
    }
)
"""Replica headers not passed back: hop-by-hop ones, and those the gateway's server or the gateway set."""


@dataclass(slots=True)
class Reply:
    """An HTTP answer from a replica, read whole."""

    status: int
    headers: list[tuple[bytes, bytes]]
    """The replica's headers minus `DROP_RESPONSE_HEADERS`, names lower-case."""
    body: bytes
    elapsed_ms: float


@dataclass(slots=True)
class Failure:
    """An attempt that got no HTTP answer."""

    kind: FailureKind
    message: str


class Forwarder:
    """Sends requests to replicas over pooled connections. Open it on the serving loop."""

    def __init__(self, settings: GatewaySettings, tls: ssl.SSLContext | None = None) -> None:
        """Prepare a forwarder; `open` creates the pools. `https://` replicas are called with `tls`."""
        self._settings = settings
        self._tls = tls
        self._pools: ConnectionPools | None = None

    async def open(self) -> None:
        """Create the connection pools (on the running loop)."""
        settings = self._settings
        self._pools = ConnectionPools(
            asyncio.get_running_loop(),
            limit=settings.max_connections_per_replica,
            keepalive_s=settings.keepalive_s,
            connect_timeout_s=settings.connect_timeout_s,
            tls=self._tls,
            stream_limit=settings.max_in_flight_per_replica,  # a stream holds its connection throughout
        )

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._pools is not None:
            await self._pools.close()
            self._pools = None

    async def send(
        self,
        upstream: Upstream,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> Reply | Failure:
        """Send one request to `upstream` and read the whole answer.

        Args:
            upstream: The replica.
            method: "GET" or "POST".
            target: Path and query string, already percent-encoded, e.g. "/v2/models/m/infer".
            headers: Headers to send, names lower-case (the caller filtered and completed them; the
                client adds `host` and `content-length`).
            body: The request body.
            timeout_s: Time limit for the whole attempt.
        """
        pools = self._pools
        if pools is None:
            raise RuntimeError("Forwarder.open() was not awaited")
        endpoint = upstream.endpoint
        start = time.perf_counter()
        try:
            status, raw, payload = await pools.request(endpoint, method, target, headers, body, timeout_s)
        except (ConnectFailed, TimeoutError, Broken) as e:
            return _failure(endpoint, e, timeout_s)
        return Reply(status, _kept(raw), payload, (time.perf_counter() - start) * 1000.0)

    async def open_stream(
        self,
        upstream: Upstream,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> Streamed | Failure:
        """Send one request to `upstream` and return once the answer's head is in (its body is read from
        the `Streamed`, whose headers are already filtered by `DROP_RESPONSE_HEADERS`); same failures
        as `send`, within `timeout_s` for the head."""
        pools = self._pools
        if pools is None:
            raise RuntimeError("Forwarder.open() was not awaited")
        endpoint = upstream.endpoint
        try:
            answer = await pools.stream(endpoint, method, target, headers, body, timeout_s)
        except (ConnectFailed, TimeoutError, Broken) as e:
            return _failure(endpoint, e, timeout_s)
        answer.headers = _kept(answer.headers)
        return answer

    async def probe(self, upstream: Upstream, path: str, timeout_s: float) -> Reply | Failure:
        """`GET path` on `upstream` (a health check); same outcomes as `send`."""
        return await self.send(upstream, "GET", path, [], b"", timeout_s)


def _failure(endpoint: str, error: ConnectFailed | TimeoutError | Broken, timeout_s: float) -> Failure:
    """The client's exception as an attempt's outcome."""
    if isinstance(error, ConnectFailed):
        return Failure("connect", f"cannot connect to {endpoint}: {error}")
    if isinstance(error, Broken):
        return Failure("broken", f"{endpoint} failed mid-request: {error}")
    return Failure("timeout", f"no answer from {endpoint} within {timeout_s:.3g} s")


def _kept(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A replica's headers minus `DROP_RESPONSE_HEADERS`, names lower-case."""
    kept = []
    for name, value in raw:
        name = name.lower()
        if name not in DROP_RESPONSE_HEADERS:
            kept.append((name, value))
    return kept

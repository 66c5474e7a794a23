"""Keep-alive HTTP/1.1 connections to replicas: the gateway's upstream client.

Why not aiohttp's client (used before): per request it builds a `ClientRequest`, a `CIMultiDict` of
headers, a payload object, a `ClientResponse` with a `StreamReader`, trace signals and a timer context.
Measured alone against one replica at concurrency 16, it cost ~115 µs of CPU per request (event loop
and syscalls included) where this module costs ~45 µs: a request is one bytes join and one write, the
answer is parsed by httptools (the C parser uvicorn uses too) straight into a list, and the pool is a
deque per replica. Semantics kept from the aiohttp setup:

- at most `limit` connections per replica (callers beyond wait for one), reused last-in-first-out;
  a connection idle for `keepalive_s` (below the replica's own 5 s) is closed, never reused;
- connecting is bounded by `connect_timeout_s`, the whole exchange by the caller's time limit;
- a GET that fails mid-way (a replica closing a kept-alive connection as it is reused) is sent once
  more on another connection; a POST is not (the proxy retries it elsewhere);
- outcomes: the answer, else `ConnectFailed`, `TimeoutError` or `Broken`.

`ConnectionPools.stream` is the same exchange with the answer's body handed over as it arrives
(`Streamed.read`), for answers that are streams (server-sent events of an LLM): the status and headers
come first, and the connection goes back to the pool once the body has been read to its end. A stream
whose reader stops early closes its connection (the rest of the answer would be out of step).

Everything runs on the event loop that opened the pool; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

Headers = list[tuple[bytes, bytes]]
_monotonic = time.monotonic


class ConnectFailed(Exception):
    """No connection could be opened (refused, unreachable, TLS handshake failed)."""


class Broken(Exception):
    """The connection failed or closed before the answer was complete, or the answer was malformed."""


class _Connection(asyncio.Protocol):
    """One connection; one exchange at a time. Also the httptools parser's callback object."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expires = 0.0
        self._status = 0
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._complete = False
        self._headers_done = False
        self._framed = False
        self._streaming = False
        """Hand the body over as it arrives (`wait_head`, `read_part`) instead of whole."""
        self._error: BaseException | None = None
        """Why the exchange failed, kept for a streamed read that was not waiting when it happened."""
        """The answer says where its body ends (content-length or chunked); else it ends at EOF."""

    @property
    def complete(self) -> bool:
        """The last exchange's answer has arrived whole."""
        return self._complete

    @property
    def usable(self) -> bool:
        """Open and not closing (a connection whose answer refused keep-alive is closing)."""
        transport = self.transport
        return transport is not None and not transport.is_closing()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass: no isinstance
        self.pool.all.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.lost(self)
        if self._headers_done and not self._complete and not self._framed and exc is None:
            self._finish()  # an answer without length ends where the connection does
        else:
            self._fail(Broken("the connection closed before the answer was complete"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None and not (self._streaming and not self._complete):
            # nothing asked (and no streamed body being read): a stray answer; the connection is unusable
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(Broken(f"malformed answer: {e}"))
            self.close()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        if self._streaming and self._status >= 200:
            self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        if self._streaming:
            self._wake()

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer (1xx): the real one follows
            self._headers, self._body, self._headers_done, self._framed = [], [], False, False
            return
        if not self._parser.should_keep_alive():
            self.close()  # after this answer, per its headers or HTTP version
        self._finish()

    # the exchange

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _expire(self) -> None:
        early = self._expires - _monotonic()
        if early > 0:  # uvloop's timers run on a millisecond clock read once per loop turn
            self._timer = self.pool.loop.call_later(early, self._expire)
            return
        self._fail(TimeoutError())
        self.close()

    async def exchange(self, head: bytes, body: bytes, expires: float) -> tuple[int, Headers, bytes]:
        """Send one request and wait for the whole answer, until `time.monotonic()` is `expires` at most.

        (Monotonic time, not the loop's: the proxy judges deadlines by it, and a timeout must not
        come before the deadline it stands for.)
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            raise Broken("the connection closed before the request was sent")
        loop = self.pool.loop
        self._status, self._headers, self._body, self._error = 0, [], [], None
        self._complete = self._headers_done = self._framed = self._streaming = False
        waiter = self._waiter = loop.create_future()
        self._expires = expires
        self._timer = loop.call_later(max(0.0, expires - _monotonic()), self._expire)
        try:
            if len(body) < 65536:
                transport.write(head + body)  # one segment for the usual small request
            else:
                transport.write(head)
                transport.write(body)
            await waiter
        finally:
            self._timer.cancel()
            self._waiter = None
            if not self._complete:
                self.close()  # cancelled or failed mid-exchange: the stream is out of step
        body_parts = self._body
        return self._status, self._headers, body_parts[0] if len(body_parts) == 1 else b"".join(body_parts)

    async def wait_head(self, head: bytes, body: bytes, expires: float) -> tuple[int, Headers]:
        """Send one request and wait for the answer's status and headers only (a streamed exchange:
        `read_part` then hands the body over). Same deadline and failures as `exchange`."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise Broken("the connection closed before the request was sent")
        self._status, self._headers, self._body, self._error = 0, [], [], None
        self._complete = self._headers_done = self._framed = False
        self._streaming = True
        done = False
        try:
            transport.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                transport.write(body)
            while not (self._headers_done and self._status >= 200) and not self._complete:
                await self._wait(expires)
            done = True
        finally:
            if not done:
                self.close()
        return self._status, self._headers

    async def read_part(self, idle_s: float) -> bytes:
        """The body that arrived since the last call, waiting at most `idle_s` for some; b"" at its end.

        Raises:
            TimeoutError: Nothing arrived within `idle_s` (the connection is then closed).
            Broken: The connection failed before the body was complete.
        """
        while True:
            parts = self._body
            if parts:
                self._body = []
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if self._complete:
                return b""
            try:
                await self._wait(_monotonic() + idle_s)
            except BaseException:
                self.close()
                raise

    async def arrived(self, within_s: float) -> bool:
        """Whether some of the body (or its end) is here, waiting at most `within_s` for it; unlike
        `read_part`, a wait that runs out leaves the exchange as it was (the caller decides).

        Raises:
            Broken: The connection failed before the body was complete.
        """
        if self._body or self._complete:
            return True
        if self._error is not None:
            raise self._error
        loop = self.pool.loop
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(within_s, self._wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return bool(self._body or self._complete)

    async def _wait(self, expires: float) -> None:
        """Until the parser wakes the exchange (or it fails, or `expires` passes)."""
        if self._error is not None:
            raise self._error
        loop = self.pool.loop
        waiter = self._waiter = loop.create_future()
        self._expires = expires
        self._timer = loop.call_later(max(0.0, expires - _monotonic()), self._expire)
        try:
            await waiter
        finally:
            self._timer.cancel()
            self._waiter = None

    def close(self) -> None:
        """Close the connection (the pool hears of it through `connection_lost`)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()


class _Pool:
    """The connections to one replica."""

    def __init__(self, owner: ConnectionPools, endpoint: str) -> None:
        url = urlsplit(endpoint)
        self.endpoint = endpoint
        self.loop = owner.loop
        self.host = url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = owner.tls_context() if url.scheme == "https" else None
        default = 443 if url.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_line = f"host: {name if self.port == default else f'{name}:{self.port}'}\r\n".encode()
        self.idle: deque[_Connection] = deque()
        self.all: set[_Connection] = set()
        """Open connections, idle or busy."""
        self.connecting = 0
        self._owner = owner
        self._slots: deque[asyncio.Future[None]] = deque()
        self._sweeping: asyncio.TimerHandle | None = None

    def take_idle(self) -> _Connection | None:
        """The most recently used idle connection still fresh enough to reuse, if any."""
        idle = self.idle
        if not idle:
            return None
        oldest = self.loop.time() - self._owner.keepalive_s
        while idle:
            connection = idle.pop()
            if connection.idle_since > oldest and connection.usable:
                return connection
            connection.close()  # the replica may be closing it right now
        return None

    async def acquire(self, expires: float, limit: int | None = None) -> _Connection:
        """An idle connection, else a new one; waits while `limit` (the pools' own by default) are open."""
        cap = self._owner.limit if limit is None else limit
        while True:
            connection = self.take_idle()
            if connection is not None:
                return connection
            if len(self.all) + self.connecting < cap:
                return await self._open(expires)
            slot = self.loop.create_future()
            self._slots.append(slot)
            try:
                async with asyncio.timeout(max(0.0, expires - _monotonic())):
                    await slot
            except BaseException:
                if slot.done() and not slot.cancelled():
                    self._free()  # woken, then cancelled: pass the wake-up on
                raise

    async def _open(self, expires: float) -> _Connection:
        self.connecting += 1
        try:
            limit = min(expires - _monotonic(), self._owner.connect_timeout_s)
            async with asyncio.timeout(max(0.0, limit)):
                _, connection = await self.loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except TimeoutError:
            raise  # an OSError too, but a timeout: as aiohttp's connect timeout was
        except OSError as e:  # refused, unreachable, DNS, TLS
            raise ConnectFailed(str(e) or type(e).__name__) from e
        finally:
            self.connecting -= 1
            self._free()
        return connection

    def release(self, connection: _Connection) -> None:
        """Put a connection back after a complete exchange (closed ones are just dropped)."""
        if not connection.usable:
            return
        connection.idle_since = self.loop.time()
        self.idle.append(connection)
        self._free()
        if self._sweeping is None:
            self._sweeping = self.loop.call_later(self._owner.keepalive_s, self._sweep)

    def lost(self, connection: _Connection) -> None:
        """A connection closed (either side)."""
        self.all.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        self._free()
        if not self.all and not self.connecting and not self._slots:
            self._owner.forget(self)  # replicas come and go: keep no pool for one that left

    def _free(self) -> None:
        """Wake one caller waiting for a connection."""
        while self._slots:
            slot = self._slots.popleft()
            if not slot.done():
                slot.set_result(None)
                return

    def _sweep(self) -> None:
        """Close connections idle for `keepalive_s`; again later while some are idle."""
        self._sweeping = None
        oldest = self.loop.time() - self._owner.keepalive_s
        for connection in [c for c in self.idle if c.idle_since <= oldest]:
            connection.close()
        if self.idle:
            self._sweeping = self.loop.call_later(self._owner.keepalive_s, self._sweep)

    def close(self) -> None:
        """Close every connection."""
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None
        for connection in list(self.all):
            connection.close()


class Streamed:
    """A streamed answer: its status and headers, and its body part by part (`read`).

    Read it to its end (`read` gives b"") or `close` it: either returns the connection to the pool, or
    closes it when the body was not complete.
    """

    __slots__ = ("_connection", "_pool", "headers", "status")

    def __init__(self, pool: _Pool, connection: _Connection, status: int, headers: Headers) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status = status
        self.headers = headers

    async def arrived(self, within_s: float) -> bool:
        """Whether the next part of the body (or its end) is here, waiting at most `within_s`; a wait
        that runs out leaves the answer readable.

        Raises:
            Broken: The connection failed mid-body.
        """
        connection = self._connection
        return True if connection is None else await connection.arrived(within_s)

    async def read(self, idle_s: float) -> bytes:
        """The next part of the body (b"" at its end), waiting at most `idle_s` for it.

        Raises:
            TimeoutError: Nothing came within `idle_s`.
            Broken: The connection failed mid-body.
        """
        connection = self._connection
        if connection is None:
            return b""
        part = await connection.read_part(idle_s)
        if not part:
            self.close()
        return part

    def close(self) -> None:
        """Done with the answer: a complete one's connection goes back to the pool, else it is closed."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if not connection.complete:
            connection.close()
        self._pool.release(connection)


class ConnectionPools:
    """A pool of keep-alive connections per replica endpoint (`http(s)://host:port`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: int,
        keepalive_s: float,
        connect_timeout_s: float,
        tls: ssl.SSLContext | None = None,
        stream_limit: int | None = None,
    ) -> None:
        """Pools on `loop`: at most `limit` connections per replica, idle ones closed after
        `keepalive_s`, connecting bounded by `connect_timeout_s`; `https://` replicas are called with
        `tls` (the system's default verifying context when None). Streamed exchanges may open up to
        `stream_limit` (default `limit`): a stream holds its connection for as long as it lasts (an LLM's
        answer: seconds), so a cap sized for short exchanges would queue streams until they time out."""
        self.loop = loop
        self.limit = limit
        self.stream_limit = max(limit, stream_limit or limit)
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self._pools: dict[str, _Pool] = {}
        self._tls: ssl.SSLContext | None = tls

    def forget(self, pool: _Pool) -> None:
        """Drop an unused pool (a later request to its replica makes a new one)."""
        if self._pools.get(pool.endpoint) is pool:
            del self._pools[pool.endpoint]
            pool.close()  # stops its sweep timer

    def tls_context(self) -> ssl.SSLContext:
        """The context for `https://` replicas: the one given, else the default verifying one."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def request(
        self, endpoint: str, method: str, target: str, headers: Headers, body: bytes, timeout_s: float
    ) -> tuple[int, Headers, bytes]:
        """Send one request to `endpoint` and read the whole answer: (status, headers, body).

        Raises:
            ConnectFailed: No connection could be opened.
            TimeoutError: No complete answer within `timeout_s` (connecting included).
            Broken: The connection failed mid-way or the answer was malformed.
        """
        pool = self._pool(endpoint)
        expires = _monotonic() + timeout_s
        head = _head(pool, method, target, headers, body)
        retry = method == "GET"
        while True:
            connection = pool.take_idle() or await pool.acquire(expires)
            try:
                answer = await connection.exchange(head, body, expires)
            except Broken:
                if not retry:
                    raise
                retry = False  # once: the replica may have closed a kept-alive connection as we sent
                continue
            except BaseException:
                # Cancelled (a hedged copy won, the client left): a connection whose answer had come
                # whole goes back to the pool; one cut mid-exchange was closed and is dropped.
                pool.release(connection)
                raise
            pool.release(connection)
            return answer

    async def stream(
        self, endpoint: str, method: str, target: str, headers: Headers, body: bytes, timeout_s: float
    ) -> Streamed:
        """Send one request to `endpoint` and return as soon as the answer's status and headers are in;
        its body is read from the `Streamed` answer. A GET is sent once more when a kept-alive
        connection fails before the head.

        Raises:
            ConnectFailed: No connection could be opened.
            TimeoutError: No answer head within `timeout_s` (connecting included).
            Broken: The connection failed before the head, or the answer was malformed.
        """
        pool = self._pool(endpoint)
        expires = _monotonic() + timeout_s
        head = _head(pool, method, target, headers, body)
        retry = method == "GET"
        while True:
            connection = pool.take_idle() or await pool.acquire(expires, self.stream_limit)
            try:
                status, answer_headers = await connection.wait_head(head, body, expires)
            except Broken:
                pool.release(connection)
                if not retry:
                    raise
                retry = False
                continue
            except BaseException:
                pool.release(connection)
                raise
            return Streamed(pool, connection, status, answer_headers)

    def _pool(self, endpoint: str) -> _Pool:
        pool = self._pools.get(endpoint)
        if pool is None:
            pool = self._pools[endpoint] = _Pool(self, endpoint)
        return pool

    async def close(self) -> None:
        """Close every connection."""
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        await asyncio.sleep(0)  # let the transports report their closing


def _head(pool: _Pool, method: str, target: str, headers: Headers, body: bytes) -> bytes:
    """The request line and headers (`host` and `content-length` added), ready to write."""
    lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), pool.host_line]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    if body or method != "GET":
        lines.append(b"content-length: %d\r\n" % len(body))
    lines.append(b"\r\n")
    return b"".join(lines)

"""The upstream client (`polycloud.proxying.connections`) against a scripted raw HTTP server: reuse,
framing (length, chunked, until close), keep-alive limits, the one retry of a GET, timeouts, refused
connections, the per-replica limit and cancellation."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from polycloud.gateway import GatewaySettings
from polycloud.gateway.forwarding import Failure, Forwarder, Reply
from polycloud.gateway.routes import ReplicaRoute
from polycloud.gateway.upstreams import Upstream
from polycloud.proxying.connections import Broken, ConnectFailed, ConnectionPools, _Pool

OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"

Answer = Callable[[int, int, bytes], bytes | None]
"""(connection number, request number on it, request) -> bytes to send (None: close without answer)."""


@dataclass
class Script:
    """A raw HTTP/1.1 server answering each request as `answer` says."""

    answer: Answer
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_client: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, served = self.connections, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                served += 1
                reply = self.answer(number, served, request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower():
                    break
        except asyncio.IncompleteReadError:
            self.closed_by_client += 1
        finally:
            writer.close()


async def serve(answer: Answer) -> tuple[Script, str, asyncio.Server]:
    script = Script(answer)
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return script, f"http://127.0.0.1:{port}", server


async def finish(client: ConnectionPools | Forwarder, server: asyncio.Server) -> None:
    """Close the client, let the server's handlers see it, close the server."""
    await client.close()
    await asyncio.sleep(0.05)
    server.close()


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def pools(limit: int = 8, keepalive_s: float = 4.0) -> ConnectionPools:
    return ConnectionPools(asyncio.get_running_loop(), limit, keepalive_s, connect_timeout_s=1.0)


def always(reply: bytes) -> Answer:
    return lambda connection, number, request: reply


def test_connections_are_reused_and_requests_carry_host_and_length() -> None:
    async def test() -> None:
        script, url, server = await serve(always(OK))
        client = pools()
        for method, body in (("GET", b""), ("POST", b'{"x":1}'), ("POST", b"")):
            status, headers, payload = await client.request(
                url, method, "/v2/models/m/infer?q=1", [(b"x-a", b"1")], body, 5.0
            )
            assert (status, payload) == (200, b"ok") and (b"content-type", b"text/plain") in headers
        assert script.connections == 1
        port = url.rsplit(":", 1)[1]
        first, second, third = script.requests
        assert first.startswith(b"GET /v2/models/m/infer?q=1 HTTP/1.1\r\nhost: 127.0.0.1:" + port.encode())
        assert b"x-a: 1\r\n" in first and b"content-length" not in first
        assert second.endswith(b'content-length: 7\r\n\r\n{"x":1}') and b"content-length: 0\r\n" in third
        await finish(client, server)

    run(test)


def test_chunked_and_until_close_answers_are_read_whole() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"

    async def test() -> None:
        script, url, server = await serve(always(chunked))
        client = pools()
        assert (await client.request(url, "GET", "/", [], b"", 5.0))[2] == b"abcde"
        assert (await client.request(url, "GET", "/", [], b"", 5.0))[2] == b"abcde"
        assert script.connections == 1
        await finish(client, server)

        script, url, server = await serve(always(until_close))
        client = pools()
        assert (await client.request(url, "GET", "/", [], b"", 5.0))[2] == b"all of it"
        assert (await client.request(url, "GET", "/", [], b"", 5.0))[2] == b"all of it"
        assert script.connections == 2  # `connection: close` is honoured
        await finish(client, server)

    run(test)


def test_an_interim_answer_is_skipped() -> None:
    async def test() -> None:
        _, url, server = await serve(always(b"HTTP/1.1 100 Continue\r\n\r\n" + OK))
        client = pools()
        assert (await client.request(url, "POST", "/", [], b"x", 5.0))[:1] == (200,)
        await finish(client, server)

    run(test)


def test_idle_connections_past_keepalive_are_not_reused() -> None:
    async def test() -> None:
        script, url, server = await serve(always(OK))
        client = pools(keepalive_s=0.05)
        await client.request(url, "GET", "/", [], b"", 5.0)
        await asyncio.sleep(0.1)
        await client.request(url, "GET", "/", [], b"", 5.0)
        assert script.connections == 2
        await asyncio.sleep(0.2)  # the sweep closes the idle one
        assert script.closed_by_client >= 2
        await finish(client, server)

    run(test)


def test_a_get_is_sent_again_once_when_a_kept_alive_connection_breaks() -> None:
    """The second request on connection 1 gets no answer (a replica closing its end as we reuse it)."""

    def answer(connection: int, number: int, request: bytes) -> bytes | None:
        return None if (connection, number) == (1, 2) else OK

    async def test() -> None:
        script, url, server = await serve(answer)
        client = pools()
        await client.request(url, "GET", "/", [], b"", 5.0)
        assert (await client.request(url, "GET", "/", [], b"", 5.0))[0] == 200
        assert script.connections == 2
        await finish(client, server)

    run(test)

    async def post() -> None:
        _, url, server = await serve(answer)
        client = pools()
        await client.request(url, "POST", "/", [], b"x", 5.0)
        with pytest.raises(Broken):
            await client.request(url, "POST", "/", [], b"x", 5.0)  # the proxy retries elsewhere
        await finish(client, server)

    run(post)


def test_a_connection_closed_by_the_replica_while_idle_is_dropped() -> None:
    async def test() -> None:
        script, url, server = await serve(
            lambda c, n, r: OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
        )
        client = pools()
        await client.request(url, "POST", "/", [], b"x", 5.0)
        await asyncio.sleep(0.05)
        assert (await client.request(url, "POST", "/", [], b"x", 5.0))[0] == 200
        assert script.connections == 2
        await finish(client, server)

    run(test)


def test_timeouts_malformed_answers_and_refused_connections() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client closes
        writer.close()

    async def test() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = pools()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await client.request(url, "POST", "/", [], b"x", 0.2)
        assert 0.15 < loop.time() - started < 2

        _, bad, other = await serve(always(b"NOT HTTP\r\n\r\n"))
        with pytest.raises(Broken, match="malformed"):
            await client.request(bad, "POST", "/", [], b"x", 5.0)

        with pytest.raises(ConnectFailed):
            await client.request(f"http://127.0.0.1:{free_port()}", "POST", "/", [], b"x", 5.0)
        await finish(client, server)
        other.close()

    run(test)


def test_the_limit_per_replica_queues_callers_and_cancellation_frees_the_connection() -> None:
    gate = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await gate.wait()
                writer.write(OK)
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    async def test() -> None:
        accepted = 0

        async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            await slow(reader, writer)

        server = await asyncio.start_server(counting, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = pools(limit=1)
        first = asyncio.create_task(client.request(url, "GET", "/", [], b"", 5.0))
        second = asyncio.create_task(client.request(url, "GET", "/", [], b"", 5.0))
        await asyncio.sleep(0.1)
        assert accepted == 1 and not first.done() and not second.done()
        first.cancel()  # a hedged copy losing its race: its connection is closed, the slot freed
        await asyncio.sleep(0.1)
        assert accepted == 2
        gate.set()
        assert (await second)[0] == 200
        await finish(client, server)

    run(test)


def upstream(endpoint: str) -> Upstream:
    return Upstream("m", ReplicaRoute("r1", "a", "active", endpoint, "ready"), None, 0.0)


def test_the_forwarder_turns_outcomes_into_values() -> None:
    async def test() -> None:
        answer = b"HTTP/1.1 503 Busy\r\nx-keep: 1\r\nServer: s\r\nDate: d\r\ncontent-length: 1\r\n\r\nx"
        _, url, server = await serve(always(answer))
        forwarder = Forwarder(GatewaySettings())
        await forwarder.open()
        reply = await forwarder.send(upstream(url), "POST", "/", [], b"", 5.0)
        assert isinstance(reply, Reply) and (reply.status, reply.body) == (503, b"x")
        assert reply.headers == [(b"x-keep", b"1")]  # hop-by-hop and server-set headers dropped
        nobody = f"http://127.0.0.1:{free_port()}"
        failure = await forwarder.send(upstream(nobody), "POST", "/", [], b"", 5.0)
        assert isinstance(failure, Failure) and failure.kind == "connect"
        assert failure.message.startswith(f"cannot connect to {nobody}: ")
        await finish(forwarder, server)

    run(test)


def test_large_bodies_go_both_ways_and_pools_of_departed_replicas_are_dropped() -> None:
    def echo(connection: int, number: int, request: bytes) -> bytes:
        body = request.partition(b"\r\n\r\n")[2]
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body

    async def test() -> None:
        _, url, server = await serve(echo)
        client = pools()
        body = bytes(range(256)) * 1024  # 256 KiB: head and body written apart
        assert (await client.request(url, "POST", "/", [], body, 5.0))[2] == body
        assert len(client._pools) == 1
        server.close()
        for pool in list(client._pools.values()):
            pool.close()  # as when the replica goes: its connections close
        await asyncio.sleep(0.05)
        assert client._pools == {}
        await finish(client, server)

    run(test)


def test_host_lines_name_the_port_unless_it_is_the_schemes_default() -> None:
    async def test() -> None:
        client = pools()
        for endpoint, line in (
            ("http://10.0.0.1:8080", b"host: 10.0.0.1:8080\r\n"),
            ("http://replica", b"host: replica\r\n"),
            ("https://replica:443", b"host: replica\r\n"),
            ("http://[::1]:9000", b"host: [::1]:9000\r\n"),
        ):
            assert _Pool(client, endpoint).host_line == line
        assert _Pool(client, "https://replica").ssl is client.tls_context()
        await client.close()

    run(test)

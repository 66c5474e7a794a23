"""The gateway's HTTP protocol (`polycloud.gateway.wholewrites`): one write per answer, on a recording
transport; `100 Continue` still goes out before the body is read; closing sends what was held."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from polycloud.gateway.running import SERVER_OPTIONS
from polycloud.gateway.wholewrites import WholeWritesProtocol

Scope = dict[str, Any]


class Recording:
    """The transport side: every write, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Answers with the request body, in two messages as every ASGI app does."""
    body = (await receive())["body"]
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def exchange(request: bytes) -> Recording:
    config = uvicorn.Config(echo, log_level="warning", **SERVER_OPTIONS)
    config.load()
    protocol = WholeWritesProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Recording()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(request)
    for _ in range(20):  # let the application task run to the end
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


def test_an_answer_leaves_in_one_write() -> None:
    request = b"POST /x HTTP/1.1\r\nhost: gw\r\ncontent-length: 5\r\n\r\nhello"
    transport = asyncio.run(exchange(request))
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 5" in head and body == b"hello"


def test_continue_goes_out_before_the_body_is_read() -> None:
    request = b"POST /x HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\nhi"
    transport = asyncio.run(exchange(request))
    assert transport.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(transport.writes) == 2 and transport.writes[1].endswith(b"\r\n\r\nhi")


def test_a_connection_closing_answer_is_sent_before_the_close() -> None:
    request = b"POST /x HTTP/1.1\r\nhost: gw\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi"
    transport = asyncio.run(exchange(request))
    assert transport.closed and len(transport.writes) == 1 and transport.writes[0].endswith(b"hi")

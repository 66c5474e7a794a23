"""ASGI plumbing the gateway answers with: type aliases and the two ways to send a whole response.

The gateway is a plain ASGI callable, not a framework app: the request path is a few string tests and
two `send` calls.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json")


class ServedBy(Protocol):
    """What names the cluster that served (an `Upstream`)."""

    @property
    def cluster_header(self) -> bytes:
        """The value of `x-polycloud-cluster`."""
        ...


async def send_response(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    id_header: tuple[bytes, bytes],
    served_by: ServedBy,
) -> None:
    """Send a replica's answer: its status, headers and body, plus the request id and cluster headers."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", str(len(body)).encode()),
                id_header,
                (b"x-polycloud-cluster", served_by.cluster_header),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send `data` as a JSON answer of the gateway's own."""
    body = json.dumps(data, separators=(",", ":")).encode()
    await send_bytes(send, status, body, JSON_TYPE[1], headers)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send `body` with `content_type` and any extra `headers`."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Send `{"error": message}` with `status`."""
    await send_json(send, status, {"error": message}, headers)

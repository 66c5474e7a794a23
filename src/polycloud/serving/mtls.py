"""Mutual TLS on a replica: uvicorn serves with the replica's fleet certificate, demands a client
certificate from the fleet CA, and tells the application who called.

uvicorn does not put the peer's certificate in the ASGI scope, so `PeerHttpProtocol` reads the verified
peer's SPIFFE identity once per connection and adds it to every request's scope as
`scope["extensions"]["tls"]["polycloud.peer"]` (beside the ASGI TLS extension's fields). Renewed
certificate files are loaded into the same context every `REFRESH_S` (`polycloud.pki.contexts.Watched`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from polycloud.pki.contexts import Watched, peer_identity
from polycloud.pki.identities import role_of

REFRESH_S = 5.0
"""How often a replica looks for renewed certificate files."""


class PeerHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the verified client identity to each request's scope."""

    _peer: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer = peer_identity(transport.get_extra_info("ssl_object"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": {"polycloud.peer": self._peer}}

    def shutdown(self) -> None:
        """On a graceful stop, drop an idle connection at once. `close()` would send TLS's close_notify
        and wait for the peer's, which an idle pooled client (a synchronous prober that reads nothing
        until its next request) never sends: the replica would wait out its whole grace period."""
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()


def peer_role(request: Request) -> str | None:
    """The role of the client that sent `request` (`server`, `gateway`, `admin`), None without mTLS."""
    extensions: dict[str, Any] = request.scope.get("extensions") or {}
    return role_of((extensions.get("tls") or {}).get("polycloud.peer"))


async def keep_fresh(watched: Watched) -> None:
    """Load renewed certificate files every `REFRESH_S` until cancelled."""
    while True:
        await asyncio.sleep(REFRESH_S)
        with contextlib.suppress(OSError):
            watched.refresh()

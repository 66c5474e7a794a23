"""uvicorn's HTTP protocol (httptools), sending each answer in one write instead of two.

uvicorn writes a response's header block and its body with two `transport.write` calls, and uvloop
sends each at once: two syscalls, and on loopback often two wake-ups of the client, which reads and
parses the headers alone before the body follows. nginx sends both in one `writev`. Here the writes of
a response (from its start to its last body message) are held and joined when the response completes.
An answer with a length (every OIP answer) is held whole; a streamed one (chunked: the OpenAI API's
server-sent events) only until its first part, so tokens are never held back; a write outside a response
(`100 Continue`, uvicorn's own 400) goes out at once, and closing sends what is held first.

Run with `uvicorn.Config(..., http=WholeWritesProtocol)`.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeldWrites:
    """A transport proxy that holds the writes of the response in progress until `flush`."""

    __slots__ = ("_held", "_protocol", "_streamed", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: HttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._held: list[bytes] = []
        self._streamed: object = None
        """The response being streamed (its parts are written as they come), if any."""

    def write(self, data: bytes) -> None:
        cycle = self._protocol.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            if self._streamed is cycle:
                self._transport.write(data)
                return
            self._held.append(data)
            if cycle.chunked_encoding and len(self._held) > 1:
                # A streamed answer (chunked, no length: an LLM's tokens): the head waits for the first
                # part only, then every part goes out as it comes.
                self._streamed = cycle
                self.flush()
            return
        self.flush()
        self._transport.write(data)

    def flush(self) -> None:
        """Send what is held, in one write."""
        held = self._held
        if held:
            data = held[0] if len(held) == 1 else b"".join(held)
            held.clear()
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)  # everything else is the transport's


class WholeWritesProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose responses leave in one write each."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _HeldWrites(transport, self)))

    def on_response_complete(self) -> None:
        cast(_HeldWrites, self.transport).flush()
        super().on_response_complete()

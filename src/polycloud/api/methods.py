"""405 Method Not Allowed with the whole `Allow` list, for every path of the API.

Starlette answers a wrong method with the `Allow` of the first route whose path matches, so a path
served by two routes (`PUT` and `DELETE /api/v1/secrets/{name}`) advertises one method; and since the
dashboard's files are mounted at `/` and take every path, a `GET` on a `POST`-only route reached them
and got 404. This middleware looks at the routes first: a path that some routes match but none for
this method gets 405 with the union of their methods.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Route

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def route_table(routes: Iterable[BaseRoute]) -> list[Route]:
    """The plain routes among `routes` (mounts, such as the dashboard's files, answer for themselves).

    Give every router's own `routes`: FastAPI may keep included routers as opaque entries of the app's.
    """
    return [r for r in routes if isinstance(r, Route)]


def allowed_methods(table: Sequence[Route], method: str, path: str) -> set[str] | None:
    """The methods the routes of `path` accept when none accepts `method`; None when one does (or no
    route has the path: it goes on to whatever serves the rest, the dashboard's files)."""
    allowed: set[str] = set()
    for route in table:
        if route.path_regex.match(path):
            if route.methods is None or method in route.methods:
                return None
            allowed |= route.methods
    return allowed or None


class MethodGuard:
    """ASGI middleware answering 405 + `Allow` when the path exists only for other methods."""

    def __init__(self, app: App, table: Sequence[Route]) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = str(scope["path"]), str(scope.get("root_path", ""))
        path = path[len(root) :] if root and path.startswith(f"{root}/") else path  # routes match below it
        allowed = allowed_methods(self.table, scope["method"], path)
        if allowed is None:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed))
        body = json.dumps({"error": f"method {scope['method']} not allowed here; allowed: {allow}"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"allow", allow.encode()),
        ]
        await send({"type": "http.response.start", "status": 405, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

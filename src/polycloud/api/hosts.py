"""The `Host` check: the API answers only requests addressed to a name it is configured for.

A browser tricked into calling `http://attacker.example:8700` after its DNS now points at 127.0.0.1
(DNS rebinding) sends `Host: attacker.example`; refusing unknown hosts with 400 keeps such pages from
the API and the dashboard's session cookie. Allowed by default: loopback names, the address the API
listens on (every local address when it listens on all of them) and the host of POLYCLOUD_SERVER;
POLYCLOUD_API_HOSTS adds more (`*.example.com` for subdomains, `*` for any). The health check is
answered whatever the host: load balancers probe it by IP.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable, MutableMapping
from typing import Any

import psutil

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_HOST = "*"
OPEN_PATHS = frozenset({"/api/v1/health"})

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def allowed_hosts(listen_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names to accept for an API listening on `listen_host`, plus `extra` (lower-cased)."""
    hosts = set(LOOPBACK_HOSTS) | {normal(h) for h in extra if h.strip()}
    if _is_wildcard(listen_host):
        hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        hosts |= {a.address.split("%")[0].lower() for addrs in psutil.net_if_addrs().values() for a in addrs}
    else:
        hosts.add(normal(listen_host))
    return frozenset(hosts)


def normal(host: str) -> str:
    """A host as compared: lower case, without brackets, port or final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8700
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:  # name:port; more colons is a bare IPv6 address
        host = host.split(":")[0]
    return host.rstrip(".")


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(normal(host) or "0.0.0.0").is_unspecified
    except ValueError:
        return False


def host_allowed(host: str, allowed: Collection[str]) -> bool:
    if ANY_HOST in allowed:
        return True
    name = normal(host)
    if not name:
        return False
    return name in allowed or any(p.startswith("*.") and name.endswith(p[1:]) for p in allowed)


class HostGuard:
    """ASGI middleware answering 400 to requests whose `Host` is not one of `hosts`."""

    def __init__(self, app: App, hosts: Collection[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
        if host_allowed(host, self.hosts):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        body = json.dumps(
            {"error": f"host {host[:100]!r} is not one this API answers to (see POLYCLOUD_API_HOSTS)"}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})

"""SPIFFE-style identities (`spiffe://polycloud/...`): who a certificate says its holder is.

    spiffe://polycloud/server/<id>                                a control-plane server
    spiffe://polycloud/gateway/<id>                               a gateway
    spiffe://polycloud/admin/<name>                               an admin's debugging certificate
    spiffe://polycloud/<project>/service/<name>/cluster/<cluster> a replica (project `-` when none)

Only the first segment after the trust domain decides a role; the rest is for people and audit logs.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

TRUST_DOMAIN = "polycloud"
PREFIX = f"spiffe://{TRUST_DOMAIN}/"
Role = Literal["server", "gateway", "admin", "replica"]
CLIENT_ROLES: frozenset[str] = frozenset({"server", "gateway", "admin"})
"""Who may call a replica's inference endpoints."""
CONTROL_ROLES: frozenset[str] = frozenset({"server", "admin"})
"""Who may call a replica's control endpoints (faults, sampled predictions)."""


def _segment(value: str) -> str:
    return quote(value, safe="-._~") or "-"


def server(member_id: str) -> str:
    """A control-plane server's identity."""
    return f"{PREFIX}server/{_segment(member_id)}"


def gateway(member_id: str) -> str:
    """A gateway's identity."""
    return f"{PREFIX}gateway/{_segment(member_id)}"


def admin(name: str) -> str:
    """An admin's debugging certificate's identity."""
    return f"{PREFIX}admin/{_segment(name)}"


def replica(project: str | None, service: str, cluster: str) -> str:
    """A replica's identity: what it serves and where."""
    return f"{PREFIX}{_segment(project or '-')}/service/{_segment(service)}/cluster/{_segment(cluster)}"


def role_of(uri: str | None) -> Role | None:
    """The role an identity names; None for anything that is not one of ours."""
    if uri is None or not uri.startswith(PREFIX):
        return None
    parts = uri[len(PREFIX) :].split("/")
    if len(parts) == 2 and parts[0] in ("server", "gateway", "admin") and parts[1]:
        return parts[0]  # type: ignore[return-value]
    if len(parts) == 5 and parts[1] == "service" and parts[3] == "cluster":
        return "replica"
    return None

"""Certificate use cases: an admin's short-lived debugging certificate, and rotating the fleet CA.

Both are for fleet-wide admins only and audited ("cert.issue", "cert.rotate"); the private key of an
issued certificate goes back to the caller once and is never stored nor audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from polycloud.pki.authority import Issued
from polycloud.services import audit
from polycloud.services.governance import require_fleet_wide
from polycloud.state import TokenRecord
from polycloud.state.repositories import AuditWriter


class Issuer(Protocol):
    """What the use cases need of the server's certificate authority (`polycloud.server.certs`)."""

    def admin_certificate(self, name: str) -> Issued: ...
    def trust_bundle(self) -> str: ...
    def rotate_authority(self) -> str: ...


IssuerOf = Callable[[], Issuer]
"""The server's issuer, asked for once the caller is allowed (it raises when mutual TLS is off)."""


def issue(store: AuditWriter, issuer_of: IssuerOf, caller: TokenRecord) -> dict[str, Any]:
    """A client certificate naming the caller's token (`spiffe://polycloud/admin/<name>`), valid for
    an hour, that replicas accept on every endpoint; audited as "cert.issue"."""
    require_fleet_wide(caller, "get a fleet certificate")
    with audit.audited(store, audit.actor_of(caller), "cert.issue", caller.name) as entry:
        issuer = issuer_of()
        issued = issuer.admin_certificate(caller.name)
        entry.detail |= {"expiresAt": issued.not_after.isoformat()}
    return {
        "certificate": issued.certificate_pem,
        "key": issued.key_pem,
        "ca": issuer.trust_bundle(),
        "expiresAt": issued.not_after.isoformat(),
    }


def rotate(store: AuditWriter, issuer_of: IssuerOf, caller: TokenRecord) -> dict[str, Any]:
    """Make a new fleet CA (trusted at once, signing after the publish delay, when every certificate is
    renewed with it); audited as "cert.rotate"."""
    require_fleet_wide(caller, "rotate the fleet CA")
    with audit.audited(store, audit.actor_of(caller), "cert.rotate", "fleet-ca"):
        certificate = issuer_of().rotate_authority()
    return {"ca": certificate}

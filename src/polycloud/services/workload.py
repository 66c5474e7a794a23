"""Workload identity use cases: the issuer's public documents, and rotating its signing key.

The documents are public (the clouds fetch them without credentials); rotating is for fleet-wide admins
only and audited ("identity.rotate").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from polycloud.services import audit
from polycloud.services.governance import require_fleet_wide
from polycloud.state import TokenRecord
from polycloud.state.repositories import AuditWriter


class Keys(Protocol):
    """What the use cases need of the workload issuer (`polycloud.server.workload`)."""

    issuer: str

    def discovery(self) -> dict[str, Any]: ...
    def jwks(self) -> dict[str, Any]: ...
    def rotate(self) -> dict[str, Any]: ...


KeysOf = Callable[[], Keys]
"""The server's issuer, asked for once the caller is allowed."""


def rotate(store: AuditWriter, keys_of: KeysOf, caller: TokenRecord) -> dict[str, Any]:
    """Make a new signing key: published at once, signing after the publish delay; the old one stays
    published until every token it signed has expired. Audited as "identity.rotate"."""
    require_fleet_wide(caller, "rotate the workload signing key")
    with audit.audited(store, audit.actor_of(caller), "identity.rotate", "workload-issuer") as entry:
        keys = keys_of()
        made = keys.rotate()
        entry.detail |= {"kid": made["kid"], "issuer": keys.issuer}
    return made

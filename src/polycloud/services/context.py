"""What the API needs from the running control plane, passed in (never imported from the server).

The routers of `polycloud.api` reach the state store and the drivers only through this: they take
`ApiContext.store` and hand it to a use case, and type their caller with the `TokenRecord` re-exported
here, so that no router imports `polycloud.state` or `polycloud.drivers` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from polycloud.services.applying import FleetService
from polycloud.services.inspecting import Endpoints
from polycloud.services.oidc import OidcVerifier
from polycloud.state import TokenRecord
from polycloud.state.repositories_services import ApiStore

__all__ = ["ApiContext", "TokenRecord"]


@dataclass(frozen=True)
class ApiContext:
    store: ApiStore
    fleet: FleetService
    endpoints: Endpoints
    wake: Callable[[], None]
    """Wake this server's loops (its reconciler applies recorded faults at once when it leads)."""
    shutdown: Callable[[], None]
    oidc: OidcVerifier | None = None
    """The company's OpenID Provider, when POLYCLOUD_OIDC_ISSUER is set: its ID tokens are accepted."""

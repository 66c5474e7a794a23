"""What the API needs from the running control plane, passed in (never imported from the server)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from polycloud.drivers.base import Fault
from polycloud.services.applying import FleetService
from polycloud.services.inspecting import Endpoints
from polycloud.state import Store


@dataclass(frozen=True)
class ApiContext:
    store: Store
    fleet: FleetService
    endpoints: Endpoints
    wake: Callable[[], None]
    inject_fault: Callable[[str, Fault | None], None]
    """(cluster, fault) applies a fault; (cluster, None) clears the cluster's faults."""
    shutdown: Callable[[], None]

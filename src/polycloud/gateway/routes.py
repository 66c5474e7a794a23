"""What the gateway knows about the fleet: the route table, and `RouteSource`, the protocol it comes from.

The gateway never imports the controller or the drivers. It asks a `RouteSource` for a `RouteTable`
(services → replicas, each with its cluster, role, state and endpoint, plus where each cluster stands)
from a background task, and routes from the last table it got. `StoreRouteSource`
(`polycloud.gateway.sourcing`) reads the state store; `StaticRouteSource` here holds a table set by
hand (tests, embedding).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ROLES = ("active", "standby", "burst")
"""The plan's roles. A replica of any other role is routed as an active one."""


@dataclass(frozen=True, slots=True)
class ClusterRoute:
    """Where a cluster stands, for locality. Every field but `name` may be unknown (None)."""

    name: str
    provider: str | None = None
    region: str | None = None
    """The provider's region name; with `provider`, a catalog key for measured round-trip times."""
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class ReplicaRoute:
    """One replica as the control plane last observed it."""

    id: str
    """Unique across the fleet."""
    cluster: str
    role: str
    """"active", "standby" or "burst"."""
    endpoint: str | None
    """Base URL such as "http://127.0.0.1:41234"; None while the replica has none."""
    state: str
    """"starting", "ready", "failed" or "stopping": only "ready" replicas get traffic."""
    revision: int = 0


@dataclass(frozen=True, slots=True)
class FlagSplit:
    """A service's routing by a feature flag: what serves each variant (`spec.routing`)."""

    flag: str
    variants: tuple[tuple[str, str | int], ...]
    """(variant, target) pairs: a target is another service (a name) or a revision of this service (a
    number); a variant not listed is served by the service itself."""

    def revisions(self) -> tuple[int, ...]:
        """The revisions of this service that variants name, in order."""
        return tuple(sorted({t for _, t in self.variants if isinstance(t, int)}))


@dataclass(frozen=True, slots=True)
class ServiceRoutes:
    """A service (its name is the model name in OIP paths), its resilience pattern and its replicas."""

    name: str
    pattern: str = "single"
    """"single", "active-active", "active-passive" or "burst" (informational: roles decide routing)."""
    replicas: tuple[ReplicaRoute, ...] = ()
    canary: tuple[int, int] | None = None
    """(revision, percent) during a canary rollout: that share of requests goes to replicas of that
    revision first (a retry may go anywhere), the rest to the others."""
    hedge: float | None = None
    """The percentile of recent attempt times after which an attempt is hedged; None: never."""
    protocol: str = "oip-v2"
    """What its replicas speak: "oip-v2" (served under /v2/models/) or "openai" (under /v1/)."""
    prefix_affinity: bool = False
    """Requests sharing a prompt prefix prefer the replica that served it (openai services)."""
    project: str | None = None
    """The service's `project` label: in the evaluation context of flags asked for with its keys."""
    routing: FlagSplit | None = None
    """Requests are sent to the service the flag's variant names (`polycloud.gateway.flagrouting`)."""
    held: tuple[int, ...] = ()
    """Revisions whose replicas run only because `routing` names them: requests the flag sends to no
    revision do not go to them while the service's own revision has a replica to offer."""

    def clusters(self) -> dict[str, list[ReplicaRoute]]:
        """The replicas grouped by cluster, clusters in order of first appearance."""
        grouped: dict[str, list[ReplicaRoute]] = {}
        for replica in self.replicas:
            grouped.setdefault(replica.cluster, []).append(replica)
        return grouped


@dataclass(frozen=True, slots=True)
class FlagRoute:
    """A FeatureFlag the gateway answers over OFREP (`polycloud.gateway.flagboard`)."""

    key: str
    definition: dict[str, Any]
    """The document's `spec`: a flag in flagd's format (state, variants, defaultVariant, targeting)."""


@dataclass(frozen=True)
class RouteTable:
    """A consistent snapshot of every service's routes."""

    services: Mapping[str, ServiceRoutes] = field(default_factory=dict)
    """By service name."""
    clusters: Mapping[str, ClusterRoute] = field(default_factory=dict)
    """By cluster name; a cluster missing here has an unknown location."""
    flags: Mapping[str, FlagRoute] = field(default_factory=dict)
    """Feature flags by key: they ride the route refresh, so they are served from memory and while the
    store is unreachable."""

    @classmethod
    def of(
        cls,
        services: list[ServiceRoutes],
        clusters: list[ClusterRoute] | None = None,
        flags: list[FlagRoute] | None = None,
    ) -> RouteTable:
        """Build a table from lists.

        Args:
            services: Every service, names unique.
            clusters: Locations of clusters; any subset.
            flags: Feature flags, keys unique.
        """
        return cls(
            {s.name: s for s in services},
            {c.name: c for c in clusters or []},
            {f.key: f for f in flags or []},
        )


class RouteSource(Protocol):
    """Where the gateway learns its routes from.

    `snapshot` is called from a worker thread every refresh interval (≤ 0.5 s by default), never on the
    request path. It may block (a database read) but should return within a second or two.
    """

    def snapshot(self) -> RouteTable:
        """The current routes.

        Raises:
            PolycloudError: The routes cannot be read now (for example `TransientError` while the
                database is unreachable); the gateway keeps routing on the last table it got.
        """
        ...


class StaticRouteSource:
    """A route source holding a table set by hand; `set` may be called from any thread."""

    def __init__(self, table: RouteTable | None = None) -> None:
        """Start with `table` (an empty table by default)."""
        self._lock = threading.Lock()
        self._table = table or RouteTable()

    def set(self, table: RouteTable) -> None:
        """Replace the table; the gateway follows at its next refresh."""
        with self._lock:
            self._table = table

    def snapshot(self) -> RouteTable:
        """The table last set."""
        with self._lock:
            return self._table

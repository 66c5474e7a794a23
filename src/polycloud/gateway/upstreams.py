"""The gateway's live view of every replica: `Upstream` (routing state of one replica) and its registry.

A route table says which replicas exist; the gateway adds what it measures: requests in flight, an EWMA
of latency, the last active health check, and passive ejection. `UpstreamRegistry.apply` merges a new
table in, keeping that measured state for replicas that stay (same id and endpoint). Everything here is
touched from the event loop only, so it needs no locks.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from polycloud.gateway.locality import Locator, Point
from polycloud.gateway.routes import ClusterRoute, ReplicaRoute, RouteTable


def _routable_endpoint(endpoint: str) -> bool:
    """True for a base URL the gateway can append OIP paths to: `http(s)://host[:port][/]`."""
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError:
        return False
    plain = url.path in ("", "/") and not url.query and not url.fragment
    return url.scheme in ("http", "https") and bool(url.hostname) and plain and port != 0


class Upstream:
    """One replica as the gateway routes to it."""

    __slots__ = (
        "cluster",
        "cluster_header",
        "consecutive_failures",
        "ejected_until",
        "ejections",
        "endpoint",
        "ewma_ms",
        "health_ms",
        "health_timeouts",
        "healthy",
        "id",
        "last_ejected_at",
        "outstanding",
        "prior_ms",
        "revision",
        "role",
        "routable",
        "service",
        "silent",
        "site",
        "state",
    )

    def __init__(self, service: str, route: ReplicaRoute, site: ClusterRoute | None, prior_ms: float) -> None:
        """Start tracking a replica.

        Args:
            service: The service it serves.
            route: The replica as the route table has it; must have an endpoint.
            site: Where its cluster stands, when known.
            prior_ms: Expected latency before any measurement (modelled RTT from the gateway, or 0).
        """
        self.service = service
        self.id = route.id
        self.endpoint = (route.endpoint or "").rstrip("/")
        self.site = site
        self.prior_ms = prior_ms
        self.outstanding = 0
        """Requests sent to it and not answered yet."""
        self.ewma_ms: float | None = None
        """EWMA of answer times (proxied requests and health checks), None before the first."""
        self.healthy = True
        """False after a failed active health check, a refused connection, or attempts or checks that
        kept getting no answer in time, until a check passes."""
        self.silent = False
        """Unhealthy only for answering too late (timed-out checks, ejected for timed-out attempts), not
        for refusing or answering "not ready": it may be slow rather than gone, so it is still tried
        when nothing else can serve (`polycloud.gateway.selecting`)."""
        self.health_ms: float | None = None
        """What its health checks take: jumps to a slower answer at once, decays as an EWMA; sets the
        checks' time limit (`polycloud.gateway.background`). None before the first answer."""
        self.health_timeouts = 0
        """Health checks in a row that got no answer within their limit."""
        self.consecutive_failures = 0
        self.ejected_until = 0.0
        """`time.monotonic()` value until which passive outlier detection keeps it out."""
        self.ejections = 0
        """Ejections in a row, for the growing back-off."""
        self.last_ejected_at = 0.0
        self.update(route, site)

    def update(self, route: ReplicaRoute, site: ClusterRoute | None) -> None:
        """Take the fields the control plane may change (role, state, revision, cluster location)."""
        self.cluster = route.cluster
        self.cluster_header = route.cluster.encode()
        """The cluster's name as the value of `x-polycloud-cluster`."""
        self.role = route.role
        self.state = route.state
        self.revision = route.revision
        self.site = site
        self.routable = route.state == "ready"

    @property
    def expected_ms(self) -> float:
        """The latency to expect: the EWMA once measured, else the prior."""
        ewma = self.ewma_ms
        return self.prior_ms if ewma is None else ewma

    def usable(self, now: float) -> bool:
        """Ready, passing health checks, and not ejected at monotonic time `now`."""
        return self.routable and self.healthy and self.ejected_until <= now

    def silence(self) -> bool:
        """Mark it unhealthy for answering too late (attempts still waiting on it are hedged at once, see
        `polycloud.gateway.proxy`); returns False when it was unhealthy already."""
        if not self.healthy:
            return False
        self.healthy, self.silent = False, True
        return True

    def recovered(self) -> None:
        """Forget latency and failures measured before it went unhealthy (an active check passed again)."""
        self.ewma_ms = None
        self.consecutive_failures = 0
        self.health_timeouts = 0
        self.silent = False

    def observe(self, elapsed_ms: float, alpha: float) -> None:
        """Fold one answer time into the EWMA."""
        ewma = self.ewma_ms
        self.ewma_ms = elapsed_ms if ewma is None else ewma + alpha * (elapsed_ms - ewma)

    def __repr__(self) -> str:
        return f"Upstream({self.id!r}, {self.cluster!r}, {self.role!r}, {self.endpoint!r})"


class ServicePool:
    """The upstreams of one service, split by role (and by revision during a canary rollout, or for
    routing by a flag to revisions)."""

    __slots__ = (
        "_alone",
        "active",
        "burst",
        "canary_weight",
        "hedge",
        "name",
        "own",
        "pattern",
        "prefix_affinity",
        "protocol",
        "revisions",
        "standby",
        "tracks",
        "upstreams",
    )

    def __init__(
        self,
        name: str,
        pattern: str,
        upstreams: list[Upstream],
        canary: tuple[int, int] | None = None,
        hedge: float | None = None,
        protocol: str = "oip-v2",
        prefix_affinity: bool = False,
        named: tuple[int, ...] = (),
        held: tuple[int, ...] = (),
    ) -> None:
        """Group `upstreams` by role; unknown roles count as active. With `canary` (revision, percent),
        `tracks` holds the pools of the baseline's and of the canary's replicas. `named`: revisions a
        flag routes to (each with a pool in `revisions`); `held`: those of them that run only for the
        flag (left out of `own`)."""
        self.name = name
        self.pattern = pattern
        self.upstreams = upstreams
        self.standby = [u for u in upstreams if u.role == "standby"]
        self.burst = [u for u in upstreams if u.role == "burst"]
        self.active = [u for u in upstreams if u.role not in ("standby", "burst")]
        self.hedge = hedge
        """Hedge attempts slower than this percentile of recent ones; None: never."""
        self.protocol = protocol
        """"oip-v2" or "openai"."""
        self.prefix_affinity = prefix_affinity
        """Route requests sharing a prompt prefix to the same replica (`Selector.select`'s `affinity`)."""
        self.canary_weight = canary[1] if canary else 0
        self.tracks: tuple[ServicePool, ServicePool] | None = None
        if canary is not None:
            baseline = [u for u in upstreams if u.revision != canary[0]]
            new = [u for u in upstreams if u.revision == canary[0]]
            self.tracks = (
                ServicePool(
                    name, pattern, baseline, hedge=hedge, protocol=protocol, prefix_affinity=prefix_affinity
                ),
                ServicePool(
                    name, pattern, new, hedge=hedge, protocol=protocol, prefix_affinity=prefix_affinity
                ),
            )
        self.own: ServicePool | None = None
        """Without the replicas of held revisions (None: none held): the service's own traffic."""
        if held:
            mine = [u for u in upstreams if u.revision not in held]
            self.own = ServicePool(name, pattern, mine, canary, hedge, protocol, prefix_affinity)
        self.revisions: dict[int, ServicePool] = {}
        """Per revision a flag routes to, the pool of its replicas (when it has any)."""
        for number in named:
            if members := [u for u in upstreams if u.revision == number]:
                self.revisions[number] = ServicePool(name, pattern, members, hedge=hedge, protocol=protocol)
        self._alone = (self,)

    def track(self, draw: float) -> ServicePool:
        """The pool a request's first attempt picks from, given a uniform `draw` in [0, 1)."""
        if self.tracks is None:
            return self
        return self.tracks[1] if draw * 100 < self.canary_weight else self.tracks[0]

    def preferred(self, revision: int | None) -> tuple[ServicePool, ...]:
        """The pools to choose a replica from, in turn until one has a replica to offer: the replicas of
        `revision` (a flag's choice), the service's own, then any (a flag never fails a request)."""
        if self.own is None and revision is None:
            return self._alone
        chosen = self.revisions.get(revision) if revision is not None else None
        pools = (chosen, self.own, self)
        return tuple(p for p in pools if p is not None)


class UpstreamRegistry:
    """Every service's pool, rebuilt from each new route table."""

    def __init__(self, locator: Locator, home: Point | None) -> None:
        """Create an empty registry.

        Args:
            locator: For the prior latency of a new replica.
            home: Where the gateway stands, for that prior; None gives a prior of 0.
        """
        self._locator = locator
        self._home = home
        self._pools: dict[str, ServicePool] = {}
        self._by_key: dict[tuple[str, str, str], Upstream] = {}
        self._table: RouteTable | None = None
        self.version = 0
        """Grows by one each time a different table is applied."""

    @property
    def loaded(self) -> bool:
        """True once a table has been applied."""
        return self._table is not None

    def pool(self, service: str) -> ServicePool | None:
        """The pool of `service`, or None when the table has no such service."""
        return self._pools.get(service)

    def services(self) -> list[str]:
        """Every known service name."""
        return list(self._pools)

    def upstreams(self) -> Iterator[Upstream]:
        """Every tracked replica."""
        return iter(list(self._by_key.values()))

    def routed(self) -> dict[str, list[int]]:
        """Each service's revisions that have a replica ready in the route table (what this gateway can
        serve; its heartbeat tells the control plane, which `apply` waits on)."""
        pools = self._pools.items()
        return {name: sorted({u.revision for u in pool.upstreams if u.routable}) for name, pool in pools}

    def apply(self, table: RouteTable) -> bool:
        """Follow `table`; returns False when it equals the last one (nothing done).

        Replicas that keep their id and endpoint keep their measured state; replicas without an
        endpoint, or with one that is not an `http(s)://host:port` URL, are not tracked (they cannot be
        routed to).
        """
        if table == self._table:
            return False
        by_key: dict[tuple[str, str, str], Upstream] = {}
        pools: dict[str, ServicePool] = {}
        for service in table.services.values():
            members: list[Upstream] = []
            for route in service.replicas:
                if not route.endpoint or not _routable_endpoint(route.endpoint):
                    continue
                key = (service.name, route.id, route.endpoint)
                site = table.clusters.get(route.cluster)
                upstream = self._by_key.get(key)
                if upstream is None:
                    prior = self._locator.rtt_ms(self._home, site)
                    upstream = Upstream(service.name, route, site, prior)
                else:
                    upstream.update(route, site)
                by_key[key] = upstream
                members.append(upstream)
            pools[service.name] = ServicePool(
                service.name,
                service.pattern,
                members,
                service.canary,
                service.hedge,
                service.protocol,
                service.prefix_affinity,
                service.routing.revisions() if service.routing is not None else (),
                service.held,
            )
        self._by_key = by_key
        self._pools = pools
        self._table = table
        self.version += 1
        return True

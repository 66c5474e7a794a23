"""Choosing the upstream for one attempt: role tiers, health, saturation, retry spreading, then a policy.

The candidates of an attempt, in order of decision:

1. usable replicas (ready in the route table, passing health checks, not ejected) not yet tried by
   this request;
2. the tier by pattern: **active** replicas serve; **burst** replicas join them when the actives'
   mean in-flight load reaches `burst_threshold`; **standby** (and burst) replicas serve only while no
   active replica is usable — and, on a retry, when every usable active one has already failed this
   request;
3. on a retry, replicas in a cluster not tried yet when there are any: from the tier, else from the
   usable standby and burst replicas (an active cluster that just failed this request is likely down
   as a whole, before the health checks have said so);
4. when nothing is usable, *panic routing*: healthy replicas that are only ejected (ejection is a
   guess; refusing every request would be worse), else replicas that are unhealthy only for answering
   late (`Upstream.silent`: a slow replica may still answer, and its attempt is never cut at its
   limit, only hedged);
5. replicas below `max_in_flight_per_replica` (none left: the service is saturated, 429);

and the routing policy picks among what is left. No candidate at all is a 503 with the reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from polycloud.gateway.locality import Point
from polycloud.gateway.policies import RoutingPolicy
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.upstreams import ServicePool, Upstream


@dataclass(frozen=True, slots=True)
class NoRoute:
    """Why no upstream can take an attempt, and the status to answer with (503, or 429 when saturated)."""

    status: int
    reason: str


class Selector:
    """Applies the candidate rules above and asks the routing policy."""

    def __init__(self, settings: GatewaySettings, policy: RoutingPolicy) -> None:
        """Create a selector.

        Args:
            settings: Burst threshold and per-replica in-flight cap.
            policy: Ranks the final candidates.
        """
        self.policy = policy
        self._threshold = settings.burst_threshold
        self._limit = settings.max_in_flight_per_replica

    def select(
        self,
        pool: ServicePool,
        client: Point | None,
        now: float,
        tried: list[Upstream],
        affinity: bytes | None = None,
    ) -> Upstream | NoRoute:
        """The upstream for the next attempt of a request.

        Args:
            pool: The service's replicas.
            client: Where the client is, for locality.
            now: `time.monotonic()`, for ejections.
            tried: Upstreams that already failed this request, in order.
            affinity: The request's prompt prefix (prefix affinity, `affine`); None: the policy alone.
        """
        actives = [u for u in pool.active if u.usable(now)]
        fresh = [u for u in actives if u not in tried] if tried else actives
        if fresh:
            tier = fresh
            if pool.burst and sum(u.outstanding for u in actives) >= self._threshold * len(actives):
                tier = tier + [u for u in pool.burst if u.usable(now) and u not in tried]
        else:
            tier = [u for u in (*pool.standby, *pool.burst) if u.usable(now) and u not in tried]
        if tried:
            tier = self._spread(pool, tier, now, tried)
        if not tier:
            tier = [u for u in pool.upstreams if u.routable and u.healthy and u not in tried]
            if not tier:
                tier = [u for u in pool.upstreams if u.routable and u.silent and u not in tried]
                if not tier:
                    return NoRoute(503, unavailable_reason(pool, tried))
        limit = self._limit
        open_ = [u for u in tier if u.outstanding < limit]
        if not open_:
            return NoRoute(429, f"every replica of service {pool.name!r} is saturated ({limit} in flight)")
        chosen = self.policy.choose(open_, client)
        return chosen if affinity is None else affine(open_, chosen, affinity)

    @staticmethod
    def _spread(pool: ServicePool, tier: list[Upstream], now: float, tried: list[Upstream]) -> list[Upstream]:
        """Retry candidates: the tier's replicas in clusters not tried yet, else usable standby or burst
        replicas in such clusters, else the tier as it is."""
        clusters = {u.cluster for u in tried}
        elsewhere = [u for u in tier if u.cluster not in clusters]
        if elsewhere:
            return elsewhere
        spare = [u for u in (*pool.standby, *pool.burst) if u.cluster not in clusters and u.usable(now)]
        return spare or tier


AFFINITY_SLACK = 2
"""How many more requests in flight than the least busy of its cluster's candidates a prefix's replica
may have and still be preferred (consistent hashing with bounded load): past it, load wins."""


def affine(candidates: list[Upstream], chosen: Upstream, prefix: bytes) -> Upstream:
    """Prefix affinity: among the candidates in the cluster the policy `chosen` (locality stays the
    policy's), the one a prompt prefix hashes to (rendezvous hashing: stable as replicas come and go,
    the same on every gateway), unless it is busier than the least busy by more than `AFFINITY_SLACK`."""
    local = [u for u in candidates if u.cluster == chosen.cluster]
    if len(local) < 2:
        return chosen
    preferred = max(local, key=lambda u: hashlib.blake2b(prefix + u.id.encode(), digest_size=8).digest())
    least = min(u.outstanding for u in local)
    return preferred if preferred.outstanding <= least + AFFINITY_SLACK else chosen


def unavailable_reason(pool: ServicePool, tried: list[Upstream]) -> str:
    """A sentence saying why no replica of `pool` can serve, counting replicas by cause."""
    if not pool.upstreams:
        return f"no ready replica of service {pool.name!r}: it has no replica with an endpoint yet"
    causes: Counter[str] = Counter()
    for u in pool.upstreams:
        if u in tried:
            causes["failed this request"] += 1
        elif not u.routable:
            causes[u.state] += 1
        elif not u.healthy:
            causes["failing health checks"] += 1
        else:
            causes["ejected"] += 1
    detail = ", ".join(f"{n} {cause}" for cause, n in sorted(causes.items()))
    return f"no ready replica of service {pool.name!r} ({len(pool.upstreams)} replicas: {detail})"

"""Routing policies: which of several usable replicas gets a request. Small classes registered by name.

    locality            (default) lowest (client→cluster RTT + EWMA latency) × (1 + in-flight requests)
    latency             lowest EWMA latency × (1 + in-flight requests) ("peak EWMA")
    least-outstanding   fewest requests in flight, then lowest latency
    p2c                 power of two random choices on in-flight requests

A policy only ranks: which replicas are candidates (role tiers, health, ejection, saturation, retries
that prefer another cluster) is decided before, in `polycloud.gateway.selecting`. A new policy is a
subclass with a `name`:

    class Fastest(RoutingPolicy, name="fastest"):
        def choose(self, candidates, client): ...
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from polycloud.errors import UserError
from polycloud.gateway.locality import Locator, Point
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.upstreams import Upstream


class RoutingPolicy(ABC):
    """Chooses one replica among candidates. Runs on the request path: no I/O, no waiting."""

    name: ClassVar[str]
    _registry: ClassVar[dict[str, type[RoutingPolicy]]] = {}

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        RoutingPolicy._registry[name] = cls

    def __init__(self, settings: GatewaySettings, locator: Locator, rng: random.Random) -> None:
        """Create the policy.

        Args:
            settings: The gateway's settings.
            locator: Round-trip times from a client to a cluster.
            rng: Randomness for tie-breaking and sampling (seed it in tests).
        """
        self.settings = settings
        self.locator = locator
        self.rng = rng

    @abstractmethod
    def choose(self, candidates: Sequence[Upstream], client: Point | None) -> Upstream:
        """Pick one of `candidates` (never empty) for a request from `client` (None: location unknown)."""


def _load_key(upstream: Upstream) -> tuple[int, float]:
    return (upstream.outstanding, upstream.expected_ms)


def two_choices(candidates: Sequence[Upstream], rng: random.Random) -> Upstream:
    """Power of two choices: of two distinct random candidates, the one with fewer requests in flight."""
    if len(candidates) == 1:
        return candidates[0]
    first, second = rng.sample(candidates, 2)
    return first if _load_key(first) <= _load_key(second) else second


class LeastOutstanding(RoutingPolicy, name="least-outstanding"):
    """Fewest requests in flight; ties go to the lower expected latency, then at random."""

    def choose(self, candidates: Sequence[Upstream], client: Point | None) -> Upstream:
        """See `RoutingPolicy.choose`."""
        best = min(_load_key(u) for u in candidates)
        ties = [u for u in candidates if _load_key(u) == best]
        return ties[0] if len(ties) == 1 else self.rng.choice(ties)


class PowerOfTwo(RoutingPolicy, name="p2c"):
    """Power of two random choices on requests in flight."""

    def choose(self, candidates: Sequence[Upstream], client: Point | None) -> Upstream:
        """See `RoutingPolicy.choose`."""
        return two_choices(candidates, self.rng)


FLOOR_MS = 1.0
"""Added to every expected latency, so that unmeasured replicas (0 ms) still weigh their load."""


def _cheapest(candidates: Sequence[Upstream], costs: list[float], rng: random.Random) -> Upstream:
    best = min(costs)
    if costs.count(best) == 1:  # the usual case, without building the list of ties
        return candidates[costs.index(best)]
    return rng.choice([u for u, c in zip(candidates, costs, strict=True) if c == best])


class PeakLatency(RoutingPolicy, name="latency"):
    """Lowest (expected latency + 1 ms) × (1 + requests in flight), "peak EWMA"; ties at random."""

    def choose(self, candidates: Sequence[Upstream], client: Point | None) -> Upstream:
        """See `RoutingPolicy.choose`."""
        if len(candidates) == 1:
            return candidates[0]
        costs = [(u.expected_ms + FLOOR_MS) * (1 + u.outstanding) for u in candidates]
        return _cheapest(candidates, costs, self.rng)


class Locality(RoutingPolicy, name="locality"):
    """Nearest and fastest first, spilling over as queues build.

    A replica's cost is the round trip this client would see — RTT from the client's region to the
    replica's cluster plus the replica's expected latency (EWMA) — times the queue it would join
    (1 + requests in flight); the cheapest wins, ties at random. At low load the nearest cluster takes
    everything; as its queues grow, traffic spills to the next-nearest; a cluster in brown-out loses
    its rank as its EWMA grows; between equally placed clusters load evens out.
    """

    def choose(self, candidates: Sequence[Upstream], client: Point | None) -> Upstream:
        """See `RoutingPolicy.choose`."""
        if len(candidates) == 1:
            return candidates[0]
        if client is None:  # no RTT to add (it would be 0 for every replica)
            costs = [(u.expected_ms + FLOOR_MS) * (1 + u.outstanding) for u in candidates]
        else:
            rtt = self.locator.rtt_ms
            costs = [
                (rtt(client, u.site) + u.expected_ms + FLOOR_MS) * (1 + u.outstanding) for u in candidates
            ]
        return _cheapest(candidates, costs, self.rng)


def routing_policies() -> list[str]:
    """Names of every registered routing policy."""
    return sorted(RoutingPolicy._registry)


def make_routing_policy(
    settings: GatewaySettings, locator: Locator, rng: random.Random | None = None
) -> RoutingPolicy:
    """The policy named by `settings.routing_policy`.

    Raises:
        UserError: No policy has that name; the message lists the known ones.
    """
    cls = RoutingPolicy._registry.get(settings.routing_policy)
    if cls is None:
        raise UserError(
            f"unknown routing policy {settings.routing_policy!r}; known: {', '.join(routing_policies())}"
        )
    return cls(settings, locator, rng or random.Random())

"""Locality: the round-trip time from where a client is to where a cluster is.

A client names its region as `provider/region` (header `x-polycloud-client-region`, else the gateway's
own). Following DESIGN.md §4, the RTT between two catalog regions is the catalog's measured figure when
it has one, and otherwise `polycloud.placement.geo.modelled_rtt_ms` from both ends' coordinates. When
either end's location is unknown the RTT is 0, so locality drops out and measured latency decides.

Lookups are cached (bounded), so the request path costs a dict hit.
"""

from __future__ import annotations

from dataclasses import dataclass

from polycloud.catalog import Catalog
from polycloud.gateway.routes import ClusterRoute
from polycloud.placement.geo import modelled_rtt_ms

MAX_CACHED = 4096
"""Entries per cache; past that a cache is cleared (a crude but bounded policy)."""


@dataclass(frozen=True, slots=True)
class Point:
    """A located place: a catalog region key when known, and coordinates."""

    text: str
    """As given, e.g. "gcp/europe-west4"."""
    provider: str
    region: str
    lat: float
    lon: float


class Locator:
    """Resolves region names and RTTs against the catalog (or none: then every RTT is 0)."""

    def __init__(self, catalog: Catalog | None) -> None:
        """Use `catalog` for region coordinates and measured RTTs; None disables locality."""
        self._catalog = catalog
        self._points: dict[str, Point | None] = {}
        self._rtts: dict[tuple[str, ClusterRoute], float] = {}

    def point(self, text: str | None) -> Point | None:
        """The place named `provider/region`; None for None, a malformed name or an unknown region."""
        if text is None:
            return None
        if text in self._points:
            return self._points[text]
        point = self._resolve(text)
        if len(self._points) >= MAX_CACHED:
            self._points.clear()
        self._points[text] = point
        return point

    def _resolve(self, text: str) -> Point | None:
        if self._catalog is None:
            return None
        provider, slash, region = text.strip().partition("/")
        if not slash:
            return None
        found = self._catalog.region(provider, region)
        if found is None:
            return None
        return Point(text, provider, region, found.lat, found.lon)

    def rtt_ms(self, client: Point | None, cluster: ClusterRoute | None) -> float:
        """Round-trip time between `client` and `cluster` in ms; 0 when either location is unknown."""
        if client is None or cluster is None:
            return 0.0
        key = (client.text, cluster)
        cached = self._rtts.get(key)
        if cached is not None:
            return cached
        rtt = self._compute(client, cluster)
        if len(self._rtts) >= MAX_CACHED:
            self._rtts.clear()
        self._rtts[key] = rtt
        return rtt

    def _compute(self, client: Point, cluster: ClusterRoute) -> float:
        if self._catalog is not None and cluster.provider is not None and cluster.region is not None:
            measured = self._catalog.measured_rtt_ms(
                (client.provider, client.region), (cluster.provider, cluster.region)
            )
            if measured is not None:
                return measured
        if cluster.lat is None or cluster.lon is None:
            return 0.0
        return modelled_rtt_ms(client.lat, client.lon, cluster.lat, cluster.lon)

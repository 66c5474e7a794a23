"""Prices of observed usage: the hourly price a plan chose, transfer prices, and prorating (DESIGN.md §4).

The hourly price of a replica is the `hourlyUSD` its revision's stored placement chose for its cluster.
A placement recorded without one (older revisions) is priced as the planner would price it: the cheapest
offering of the cluster that fits the workload's resources (`placement.sites.best_offering`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polycloud.catalog import Catalog
from polycloud.placement.sites import Site, best_offering, build_site, hourly, transfer_usd_per_gb
from polycloud.spec.models import Cluster, Resources

HOURS_PER_MONTH = 730.0
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * SECONDS_PER_HOUR
BYTES_PER_GB = 1e9
"""Transfer is priced per decimal GB, as cloud price lists do."""


def compute_usd(replica_seconds: float, hourly_usd: float) -> float:
    """Replica-seconds (or node-seconds) at an hourly price."""
    return replica_seconds / SECONDS_PER_HOUR * hourly_usd


def prorated_gb(gb_per_month: float, seconds: float) -> float:
    """The share of a monthly volume (730 h) that falls in `seconds`."""
    return gb_per_month * seconds / SECONDS_PER_MONTH


def assignment(placement: Sequence[Mapping[str, Any]], cluster: str) -> Mapping[str, Any] | None:
    """The stored assignment of `cluster` in a placement (`plan --json` assignments), if any."""
    return next((a for a in placement if a.get("cluster") == cluster), None)


def stored_hourly(placement: Sequence[Mapping[str, Any]], cluster: str) -> float | None:
    """The `hourlyUSD` the plan recorded for `cluster`, when it recorded one."""
    found = assignment(placement, cluster)
    value = found.get("hourlyUSD") if found is not None else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class PriceBook:
    """Prices of the declared clusters, resolved against the catalog once per cluster."""

    def __init__(self, clusters: Mapping[str, Cluster], catalog: Catalog) -> None:
        self.clusters = dict(clusters)
        self.catalog = catalog
        self._sites: dict[str, Site] = {}

    def site(self, name: str) -> Site | None:
        """The cost model's view of cluster `name`; None when it is not declared."""
        if name not in self._sites:
            cluster = self.clusters.get(name)
            if cluster is None:
                return None
            self._sites[name] = build_site(cluster, self.catalog)
        return self._sites[name]

    def provider(self, name: str) -> str:
        """The cluster's provider ("unknown" for a cluster no longer declared)."""
        cluster = self.clusters.get(name)
        return cluster.spec.provider if cluster is not None else "unknown"

    def offering_hourly(self, name: str, resources: Resources, *, spot: bool) -> float | None:
        """What the planner would pay per instance-hour in cluster `name` (None: no offering fits)."""
        site = self.site(name)
        offering = best_offering(site, resources, spot=spot) if site is not None else None
        return hourly(offering, spot) if offering is not None else None

    def hourly(
        self, placement: Sequence[Mapping[str, Any]], cluster: str, resources: Resources, *, spot: bool
    ) -> float | None:
        """The stored hourly price of `cluster` in `placement`, else the planner's."""
        stored = stored_hourly(placement, cluster)
        return stored if stored is not None else self.offering_hourly(cluster, resources, spot=spot)

    def transfer(self, src: str, dst: str) -> float | None:
        """USD per GB from cluster `src` to `dst`; None when either is not declared."""
        a, b = self.site(src), self.site(dst)
        return transfer_usd_per_gb(a, b) if a is not None and b is not None else None

"""Clusters and traffic sources resolved against the catalog: where they are, what they offer, prices.

A `Site` is everything the cost model needs to know about one cluster, whether its facts come from the
catalog, from the Cluster spec's overrides, or (for private sites) from the spec alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from polycloud.catalog import Catalog, Offering
from polycloud.placement.geo import modelled_rtt_ms, modelled_rtt_row_ms
from polycloud.spec.models import Cluster, LatLon, Network, Resources, TrafficSource


@dataclass(frozen=True)
class Point:
    """A place traffic comes from or goes to; `catalog_key` set when it is a catalog region."""

    lat: float
    lon: float
    catalog_key: tuple[str, str] | None = None


@dataclass(frozen=True)
class Site:
    """One cluster as the cost model sees it."""

    name: str
    provider: str
    region: str
    point: Point
    jurisdiction: str | None
    offerings: tuple[Offering, ...]
    internet_egress_usd_per_gb: float
    inter_region_usd_per_gb: float
    quotas: dict[str, int]

    def quota(self, accelerator: str | None) -> int | None:
        """Max accelerators of that name at once; None when unlimited."""
        if accelerator is None:
            return None
        return self.quotas.get(accelerator.lower())


def build_site(cluster: Cluster, catalog: Catalog) -> Site:
    """Resolve a Cluster spec into a Site: spec fields override the catalog's."""
    spec = cluster.spec
    region = catalog.region(spec.provider, spec.region)
    catalog_key = (spec.provider, spec.region) if region is not None else None
    if spec.location is not None:
        point = Point(spec.location.lat, spec.location.lon, catalog_key)
        jurisdiction = spec.location.jurisdiction or (region.jurisdiction if region else None)
    elif region is not None:
        point = Point(region.lat, region.lon, catalog_key)
        jurisdiction = region.jurisdiction
    else:  # rejected by spec validation; kept total for callers that skip it
        point, jurisdiction = Point(0.0, 0.0), None
    if spec.instances is not None:
        offerings = tuple(
            Offering(
                provider=spec.provider,
                region=spec.region,
                instance_type=i.name,
                accelerator=i.accelerator,
                accelerator_count=i.acceleratorCount,
                vcpus=i.vcpus,
                memory_gib=i.memoryGiB,
                hourly_usd=i.hourlyUSD,
                spot_hourly_usd=i.spotHourlyUSD,
            )
            for i in spec.instances
        )
    else:
        offerings = tuple(catalog.offerings(spec.provider, spec.region))
    published = catalog.network(spec.provider, spec.region) if spec.provider in catalog.providers else None
    override = spec.network or Network()
    internet = _first(
        override.internetEgressUSDPerGB, published.internet_egress_usd_per_gb if published else None
    )
    inter = _first(override.interRegionUSDPerGB, published.inter_region_usd_per_gb if published else None)
    return Site(
        name=cluster.metadata.name,
        provider=spec.provider,
        region=spec.region,
        point=point,
        jurisdiction=jurisdiction,
        offerings=offerings,
        internet_egress_usd_per_gb=internet,
        inter_region_usd_per_gb=inter,
        quotas={k.lower(): v for k, v in spec.quotas.items()},
    )


def _first(*values: float | None) -> float:
    for v in values:
        if v is not None:
            return v
    return 0.0


def best_offering(site: Site, resources: Resources, *, spot: bool = False) -> Offering | None:
    """The cheapest offering of `site` that meets `resources` (DESIGN.md §4 "Offering").

    Ties break towards fewer accelerators, then fewer vCPUs, less memory and the name, so that the
    choice (and the quota it consumes) is deterministic.
    """
    wanted = resources.accelerator.lower() if resources.accelerator else None
    count = resources.accelerators
    best: tuple[tuple[float, float, float, float, str], Offering] | None = None
    for o in site.offerings:
        if wanted is not None and (o.accelerator is None or o.accelerator.lower() != wanted):
            continue
        if o.accelerator_count < count or o.vcpus < resources.vcpus or o.memory_gib < resources.memoryGiB:
            continue
        key = (hourly(o, spot), o.accelerator_count, o.vcpus, o.memory_gib, o.instance_type)
        if best is None or key < best[0]:
            best = (key, o)
    return best[1] if best else None


def hourly(offering: Offering, spot: bool) -> float:
    """The hourly price paid: spot where asked for and known, else on-demand."""
    if spot and offering.spot_hourly_usd is not None:
        return offering.spot_hourly_usd
    return offering.hourly_usd


def transfer_usd_per_gb(src: Site, dst: Site) -> float:
    """Price of moving one GB from `src` to `dst` (DESIGN.md §4 "Transfer price")."""
    if src.provider == dst.provider and src.region == dst.region:
        return 0.0
    if src.provider == dst.provider:
        return src.inter_region_usd_per_gb
    return src.internet_egress_usd_per_gb


def traffic_point(source: TrafficSource, catalog: Catalog, sites: dict[str, Site]) -> Point:
    """Where a traffic source stands: a catalog region, a fleet site's region, or a lat/lon."""
    if source.location is not None:
        return _latlon(source.location)
    provider, _, region = (source.region or "").partition("/")
    found = catalog.region(provider, region)
    if found is not None:
        return Point(found.lat, found.lon, (provider, region))
    for site in sites.values():
        if site.provider == provider and site.region == region:
            return site.point
    return Point(0.0, 0.0)


def _latlon(loc: LatLon) -> Point:
    return Point(loc.lat, loc.lon)


def rtt_ms(a: Point, b: Point, catalog: Catalog) -> float:
    """Measured RTT where both ends are catalog regions with a measurement, else the model's."""
    if a.catalog_key is not None and b.catalog_key is not None:
        measured = catalog.measured_rtt_ms(a.catalog_key, b.catalog_key)
        if measured is not None:
            return measured
    return modelled_rtt_ms(a.lat, a.lon, b.lat, b.lon)


def rtt_row_ms(a: Point, others: list[Point], catalog: Catalog) -> list[float]:
    """`rtt_ms` from `a` to each of `others`, the same figures computed a row at a time."""
    modelled = modelled_rtt_row_ms(a.lat, a.lon, [(b.lat, b.lon) for b in others])
    if a.catalog_key is None:
        return modelled
    row = []
    for b, model in zip(others, modelled, strict=True):
        measured = None if b.catalog_key is None else catalog.measured_rtt_ms(a.catalog_key, b.catalog_key)
        row.append(measured if measured is not None else model)
    return row

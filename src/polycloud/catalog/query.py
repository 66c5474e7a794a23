"""Questions asked of a catalog: the cheapest matching offerings, and "did you mean" for region names.

Pure functions: they return data and leave display to the caller (`polycloud catalog`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from polycloud.catalog.model import Catalog, Offering, RegionKey


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One answer of `cheapest`: an offering, the price it was ranked by, and where it is."""

    offering: Offering
    price_usd: float
    """The hourly price ranked on: spot when asked for spot, else on-demand."""
    city: str
    country: str
    jurisdiction: str


def _matches(
    o: Offering,
    *,
    accelerator: str | None,
    count: float | None,
    provider: str | None,
    region: str | None,
    min_vcpus: float,
    min_memory_gib: float,
) -> bool:
    if accelerator is not None and (o.accelerator is None or o.accelerator.lower() != accelerator.lower()):
        return False
    if count is not None and o.accelerator_count < count:
        return False
    if provider is not None and o.provider != provider:
        return False
    if region is not None and o.region != region:
        return False
    return o.vcpus >= min_vcpus and o.memory_gib >= min_memory_gib


def _rank(row: CatalogRow) -> tuple[float, float, float, float, str, str, str]:
    """Cheapest first; ties towards fewer accelerators, vCPUs, memory, then by name (as the planner)."""
    o = row.offering
    return (row.price_usd, o.accelerator_count, o.vcpus, o.memory_gib, o.instance_type, o.provider, o.region)


def _split_region(provider: str | None, region: str | None) -> tuple[str | None, str | None]:
    """Accept `provider/region` in the region filter."""
    if region is not None and "/" in region:
        head, _, tail = region.partition("/")
        return (provider or head), tail
    return provider, region


def _rows(
    catalog: Catalog, offerings: Iterable[Offering], *, spot: bool, jurisdiction: str | None
) -> Iterator[CatalogRow]:
    for o in offerings:
        price = o.spot_hourly_usd if spot else o.hourly_usd
        if price is None:
            continue
        where = catalog.region(o.provider, o.region)
        city, country, law = (where.city, where.country, where.jurisdiction) if where else ("", "", "")
        if jurisdiction is not None and law.lower() != jurisdiction.lower():
            continue
        yield CatalogRow(o, price, city, country, law)


def cheapest(
    catalog: Catalog,
    *,
    accelerator: str | None,
    count: float | None = None,
    provider: str | None = None,
    jurisdiction: str | None = None,
    region: str | None = None,
    min_vcpus: float = 0,
    min_memory_gib: float = 0,
    spot: bool = False,
    per_region: bool = True,
    limit: int = 20,
) -> list[CatalogRow]:
    """The cheapest offerings that match, cheapest first.

    Args:
        catalog: the catalog to search.
        accelerator: accelerator name, matched case-insensitively; None for any offering (CPU or not).
        count: at least this many accelerators (`accelerator_count >= count`); None for any.
        provider: only this provider.
        jurisdiction: only regions of this jurisdiction (e.g. "EU"), case-insensitive.
        region: only this region name, or `provider/region`.
        min_vcpus: at least this many vCPUs.
        min_memory_gib: at least this much memory.
        spot: rank by spot price and leave out offerings without one.
        per_region: keep only the cheapest offering of each (provider, region).
        limit: at most this many rows; 0 or less for all.

    Returns:
        Rows sorted by price, then fewer accelerators, vCPUs and memory, then instance type.
    """
    provider, region = _split_region(provider, region)
    matching = (
        o
        for o in catalog.all_offerings()
        if _matches(
            o,
            accelerator=accelerator,
            count=count,
            provider=provider,
            region=region,
            min_vcpus=min_vcpus,
            min_memory_gib=min_memory_gib,
        )
    )
    rows = list(_rows(catalog, matching, spot=spot, jurisdiction=jurisdiction))
    if per_region:
        best: dict[RegionKey, CatalogRow] = {}
        for row in rows:
            key = (row.offering.provider, row.offering.region)
            if key not in best or _rank(row) < _rank(best[key]):
                best[key] = row
        rows = list(best.values())
    rows.sort(key=_rank)
    return rows[:limit] if limit > 0 else rows


def suggest_region(catalog: Catalog, provider: str, region: str) -> list[str]:
    """Region names of `provider` that look like `region` ("did you mean"), best first.

    Returns [] when nothing is close or the provider is unknown.
    """
    names = [r.region for r in catalog.regions(provider)]
    return difflib.get_close_matches(region, names, n=3, cutoff=0.6)


def suggest_accelerator(catalog: Catalog, accelerator: str) -> list[str]:
    """Accelerator names that look like `accelerator`, compared case-insensitively, best first."""
    names = {name.lower(): name for name in catalog.accelerators()}
    return [names[n] for n in difflib.get_close_matches(accelerator.lower(), list(names), n=3, cutoff=0.6)]

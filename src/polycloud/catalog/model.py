"""The catalog's data types: offerings, regions, network prices, and `Catalog`, the indexed whole.

Everything here is immutable once built; `polycloud.catalog.loading` builds the one shipped `Catalog`,
and tests or callers may build their own from plain lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from polycloud.errors import NotFoundError

RegionKey = tuple[str, str]
"""A catalog region as `(provider, region)`, e.g. `("gcp", "europe-west4")`."""


@dataclass(frozen=True, slots=True)
class Offering:
    """One thing that can be rented by the hour in one region.

    For GCP accelerator VMs this is a host VM type plus its attached accelerators, priced as the sum
    (see `polycloud.catalog.gcp`); elsewhere it is one row of the provider's price list.
    """

    provider: str
    region: str
    instance_type: str
    accelerator: str | None
    """Accelerator name in the catalog's spelling (e.g. "A100", "tpu-v5p-8"); None for CPU-only types."""
    accelerator_count: float
    """0 for CPU-only types; may be fractional (AWS g6f, Azure NV*ads_A10_v5)."""
    vcpus: float
    memory_gib: float
    hourly_usd: float
    """On-demand USD per hour."""
    spot_hourly_usd: float | None
    """Spot USD per hour; None where unknown. May equal `hourly_usd` (no spot discount known)."""


@dataclass(frozen=True, slots=True)
class Region:
    """Where a catalog region is and which law it falls under."""

    provider: str
    region: str
    city: str
    country: str
    """ISO 3166-1 alpha-2 code."""
    jurisdiction: str
    """"EU" for EU/EEA states, "UK" for GB, else the country code."""
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class NetworkPrices:
    """Published data-transfer prices for traffic leaving one region, USD per GB (10^9 bytes)."""

    internet_egress_usd_per_gb: float
    inter_region_usd_per_gb: float


class Catalog:
    """Prices, regions, network prices and measured latencies of the catalog providers, indexed.

    Attributes:
        providers: the catalog providers ({"aws", "gcp", "azure"} for the shipped data).
    """

    def __init__(
        self,
        *,
        regions: Iterable[Region],
        offerings: Iterable[Offering],
        network: Mapping[RegionKey, NetworkPrices],
        rtt_ms: Mapping[tuple[RegionKey, RegionKey], float],
    ) -> None:
        """Index the given tables.

        Args:
            regions: every catalog region.
            offerings: every offering (GCP ones already composed).
            network: prices per (provider, region); a `(provider, "*")` key is that provider's default
                for regions without their own entry.
            rtt_ms: measured round-trip times per ordered pair of regions.
        """
        self._regions: dict[RegionKey, Region] = {(r.provider, r.region): r for r in regions}
        by_region: dict[RegionKey, list[Offering]] = {}
        for o in offerings:
            by_region.setdefault((o.provider, o.region), []).append(o)
        self._offerings: dict[RegionKey, tuple[Offering, ...]] = {k: tuple(v) for k, v in by_region.items()}
        self._network = MappingProxyType(dict(network))
        self._rtt = MappingProxyType(dict(rtt_ms))
        self.providers: frozenset[str] = frozenset(p for p, _ in self._regions) | frozenset(
            p for p, _ in self._offerings
        )

    def region(self, provider: str, region: str) -> Region | None:
        """The region's location and jurisdiction; None when the catalog does not know it."""
        return self._regions.get((provider, region))

    def regions(self, provider: str | None = None) -> list[Region]:
        """Every region (of `provider` when given), sorted by provider then name."""
        found = (r for (p, _), r in self._regions.items() if provider is None or p == provider)
        return sorted(found, key=lambda r: (r.provider, r.region))

    def offerings(self, provider: str, region: str) -> list[Offering]:
        """Everything rentable in that region; [] for an unknown provider or region."""
        return list(self._offerings.get((provider, region), ()))

    def all_offerings(self) -> Iterator[Offering]:
        """Every offering of every region."""
        for group in self._offerings.values():
            yield from group

    def accelerators(self, provider: str | None = None) -> list[str]:
        """Every accelerator name (of `provider` when given), sorted case-insensitively."""
        names = {
            o.accelerator
            for o in self.all_offerings()
            if o.accelerator is not None and (provider is None or o.provider == provider)
        }
        return sorted(names, key=str.lower)

    def network(self, provider: str, region: str) -> NetworkPrices:
        """The published prices that apply to traffic leaving that region.

        A region the catalog does not list gets the provider's default (North America/Europe) figures.

        Raises:
            NotFoundError: `provider` is not a catalog provider.
        """
        found = self._network.get((provider, region)) or self._network.get((provider, "*"))
        if found is None:
            raise NotFoundError(
                f"no network prices for provider {provider!r}; known: {sorted(self.providers)}"
            )
        return found

    def measured_rtt_ms(self, a: RegionKey, b: RegionKey) -> float | None:
        """Measured round-trip time from `a` to `b` in ms; None when that pair was not measured.

        Measurements are directional; when only `b` to `a` was measured, that figure is returned.
        """
        found = self._rtt.get((a, b))
        return found if found is not None else self._rtt.get((b, a))

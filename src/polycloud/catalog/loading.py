"""Loading the shipped catalog from the package's `data/` folder (see `data/README.md`).

`load_catalog()` reads and indexes everything once, on first use, and returns the same `Catalog`
afterwards; nothing is read at import time.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources

from polycloud.catalog.gcp import gcp_offerings
from polycloud.catalog.model import Catalog, NetworkPrices, Offering, Region, RegionKey
from polycloud.catalog.rows import CatalogDataError, parse_vm_rows, plain_offerings

REGION_COLUMNS = ("provider", "region", "city", "country", "jurisdiction", "lat", "lon", "source")
NETWORK_COLUMNS = ("provider", "region", "internet_egress_usd_per_gb", "inter_region_usd_per_gb", "basis")
LATENCY_COLUMNS = ("src_provider", "src_region", "dst_provider", "dst_region", "rtt_ms")


def read_data(name: str) -> str:
    """The text of one shipped data file, e.g. `read_data("regions.csv")`."""
    return resources.files("polycloud.catalog").joinpath("data", name).read_text(encoding="utf-8")


def _rows(name: str, columns: tuple[str, ...]) -> list[list[str]]:
    reader = csv.reader(io.StringIO(read_data(name)))
    header = tuple(next(reader, ()))
    if header != columns:
        raise CatalogDataError(f"{name}: header {header} != {columns}")
    return list(reader)


def _number(value: str, name: str, line: int) -> float:
    try:
        return float(value)
    except ValueError as e:
        raise CatalogDataError(f"{name}:{line}: {e}") from e


def load_regions() -> list[Region]:
    """Every catalog region (`regions.csv`)."""
    return [
        Region(
            provider,
            region,
            city,
            country,
            jurisdiction,
            _number(lat, "regions.csv", i),
            _number(lon, "regions.csv", i),
        )
        for i, (provider, region, city, country, jurisdiction, lat, lon, _source) in enumerate(
            _rows("regions.csv", REGION_COLUMNS), start=2
        )
    ]


def load_offerings() -> list[Offering]:
    """Every offering: AWS and Azure rows as listed, GCP rows composed (`polycloud.catalog.gcp`)."""
    out: list[Offering] = []
    for provider in ("aws", "azure"):
        name = f"{provider}_vms.csv"
        out.extend(plain_offerings(provider, parse_vm_rows(read_data(name), name)))
    out.extend(gcp_offerings(parse_vm_rows(read_data("gcp_vms.csv"), "gcp_vms.csv")))
    return out


def load_network() -> dict[RegionKey, NetworkPrices]:
    """Network prices per region (`network.csv`, resolved per region by `scripts/build_catalog.py`)."""
    return {
        (provider, region): NetworkPrices(
            _number(internet, "network.csv", i), _number(inter, "network.csv", i)
        )
        for i, (provider, region, internet, inter, _basis) in enumerate(
            _rows("network.csv", NETWORK_COLUMNS), start=2
        )
    }


def load_rtt() -> dict[tuple[RegionKey, RegionKey], float]:
    """Measured round-trip times in ms per ordered region pair (`latency_ms.csv`)."""
    return {
        ((sp, sr), (dp, dr)): _number(rtt, "latency_ms.csv", i)
        for i, (sp, sr, dp, dr, rtt) in enumerate(_rows("latency_ms.csv", LATENCY_COLUMNS), start=2)
    }


def read_catalog() -> Catalog:
    """Read and index the shipped catalog afresh (most callers want the shared `load_catalog()`).

    Raises:
        CatalogDataError: a shipped file is malformed.
    """
    return Catalog(
        regions=load_regions(), offerings=load_offerings(), network=load_network(), rtt_ms=load_rtt()
    )


@functools.cache
def load_catalog() -> Catalog:
    """The shipped catalog, read on first call and shared afterwards (it is immutable).

    Raises:
        CatalogDataError: a shipped file is malformed.
    """
    return read_catalog()

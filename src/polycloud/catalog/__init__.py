"""The price and region catalog of the cloud providers (AWS, GCP, Azure), shipped with the package.

What it holds, and where each figure comes from, is in `data/README.md`. The planner reads it through
`load_catalog()`; `cheapest()` answers `polycloud catalog`.

    model      Offering, Region, NetworkPrices, Catalog (the indexed whole)
    rows       the price-list rows as parsed; AWS/Azure rows are offerings as they stand
    gcp        GCP host VM + accelerator rows composed into offerings
    loading    reading the package data, once (`load_catalog`) or afresh (`read_catalog`)
    query      cheapest offerings, "did you mean" suggestions
"""

from __future__ import annotations

from polycloud.catalog.loading import load_catalog, read_catalog
from polycloud.catalog.model import Catalog, NetworkPrices, Offering, Region, RegionKey
from polycloud.catalog.query import CatalogRow, cheapest, suggest_accelerator, suggest_region
from polycloud.catalog.rows import CatalogDataError

__all__ = [
    "Catalog",
    "CatalogDataError",
    "CatalogRow",
    "NetworkPrices",
    "Offering",
    "Region",
    "RegionKey",
    "cheapest",
    "load_catalog",
    "read_catalog",
    "suggest_accelerator",
    "suggest_region",
]

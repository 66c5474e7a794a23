"""Loading the shipped catalog: where the data lives, how long it takes, regions, network, latency."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import pytest

import polycloud
from polycloud.catalog import Catalog, load_catalog, read_catalog, suggest_region
from polycloud.errors import NotFoundError

DATA_FILES = (
    "aws_vms.csv",
    "gcp_vms.csv",
    "azure_vms.csv",
    "regions.csv",
    "network.csv",
    "network_published.csv",
    "latency_ms.csv",
    "README.md",
    "SOURCES.md",
)


def test_data_ships_inside_the_package() -> None:
    data = Path(str(resources.files("polycloud.catalog").joinpath("data")))
    package = Path(polycloud.__file__).parent
    assert data.is_relative_to(package)
    for name in DATA_FILES:
        assert (data / name).is_file(), name


def test_load_time_is_measured() -> None:
    """Prints the time to read and index the whole catalog (no timed assertion: machines vary)."""
    timings: list[float] = []
    for _ in range(3):
        start = time.perf_counter()
        fresh = read_catalog()
        timings.append((time.perf_counter() - start) * 1000)
    offerings = sum(1 for _ in fresh.all_offerings())
    print(f"\ncatalog load: first {timings[0]:.1f} ms, best {min(timings):.1f} ms, {offerings} offerings")
    assert fresh.providers == frozenset({"aws", "gcp", "azure"})


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_offering_counts(catalog: Catalog) -> None:
    by_provider: dict[str, int] = {}
    for o in catalog.all_offerings():
        by_provider[o.provider] = by_provider.get(o.provider, 0) + 1
    assert by_provider["aws"] == 986
    assert by_provider["azure"] == 1061
    assert by_provider["gcp"] > 1500


@pytest.mark.parametrize(
    ("provider", "region", "jurisdiction", "country"),
    [
        ("gcp", "europe-west4", "EU", "NL"),
        ("azure", "westeurope", "EU", "NL"),
        ("aws", "us-east-1", "US", "US"),
        ("aws", "eu-west-2", "UK", "GB"),
        ("azure", "norwayeast", "EU", "NO"),
        ("azure", "switzerlandnorth", "CH", "CH"),
    ],
)
def test_region_jurisdictions(
    catalog: Catalog, provider: str, region: str, jurisdiction: str, country: str
) -> None:
    found = catalog.region(provider, region)
    assert found is not None
    assert (found.jurisdiction, found.country) == (jurisdiction, country)


def test_region_coordinates(catalog: Catalog) -> None:
    found = catalog.region("aws", "us-east-1")
    assert found is not None
    assert found.city == "Ashburn"
    assert found.lat == pytest.approx(39.04, abs=0.5)
    assert found.lon == pytest.approx(-77.49, abs=0.5)


def test_regions_listing(catalog: Catalog) -> None:
    assert len(catalog.regions()) == 126
    assert len(catalog.regions("gcp")) == 41
    assert all(r.provider == "azure" for r in catalog.regions("azure"))
    assert catalog.regions("nowhere") == []


def test_every_offering_region_is_a_catalog_region(catalog: Catalog) -> None:
    for o in catalog.all_offerings():
        assert catalog.region(o.provider, o.region) is not None, (o.provider, o.region)


def test_unknown_region_has_no_offerings_and_suggestions(catalog: Catalog) -> None:
    assert catalog.region("gcp", "europe-wst4") is None
    assert catalog.offerings("gcp", "europe-wst4") == []
    assert catalog.offerings("nowhere", "us-east-1") == []
    assert suggest_region(catalog, "gcp", "europe-wst4")[0] == "europe-west4"
    assert "us-east-1" in suggest_region(catalog, "aws", "us-east1")
    assert suggest_region(catalog, "aws", "zzzzzz") == []
    assert suggest_region(catalog, "nowhere", "us-east-1") == []


def test_measured_rtt_present_both_ways(catalog: Catalog) -> None:
    a, b = ("aws", "us-east-1"), ("gcp", "europe-west4")
    there, back = catalog.measured_rtt_ms(a, b), catalog.measured_rtt_ms(b, a)
    assert there is not None and back is not None
    assert 60 < there < 120
    assert there == pytest.approx(back, rel=0.1)


def test_measured_rtt_missing_for_new_regions(catalog: Catalog) -> None:
    assert catalog.region("azure", "spaincentral") is not None
    assert catalog.measured_rtt_ms(("azure", "spaincentral"), ("aws", "us-east-1")) is None
    assert catalog.measured_rtt_ms(("aws", "us-east-1"), ("nowhere", "x")) is None


GIB = 1.073741824


@pytest.mark.parametrize(
    ("provider", "region", "internet", "inter"),
    [
        ("aws", "us-east-1", 0.09, 0.02),
        ("aws", "sa-east-1", 0.15, 0.138),
        ("aws", "ap-northeast-1", 0.114, 0.09),
        ("aws", "ap-southeast-1", 0.12, 0.02),
        ("gcp", "us-central1", 0.12 / GIB, 0.01 / GIB),
        ("gcp", "europe-west4", 0.12 / GIB, 0.02 / GIB),
        ("gcp", "asia-east1", 0.12 / GIB, 0.05 / GIB),
        ("azure", "eastus", 0.0875, 0.02),
        ("azure", "japaneast", 0.12, 0.08),
        ("aws", "not-a-region-9", 0.09, 0.02),
    ],
)
def test_network_prices(catalog: Catalog, provider: str, region: str, internet: float, inter: float) -> None:
    prices = catalog.network(provider, region)
    assert prices.internet_egress_usd_per_gb == pytest.approx(internet)
    assert prices.inter_region_usd_per_gb == pytest.approx(inter)


def test_gcp_network_is_converted_from_gib() -> None:
    prices = load_catalog().network("gcp", "us-central1")
    assert prices.internet_egress_usd_per_gb == pytest.approx(0.111758709)
    assert prices.internet_egress_usd_per_gb < 0.12


def test_network_unknown_provider_raises(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.network("onprem", "dc1")


def test_accelerator_names_keep_catalog_spelling(catalog: Catalog) -> None:
    names = catalog.accelerators()
    for name in ("A100", "A100-80GB", "H100", "H100-MEGA", "T4", "L4", "A10G", "tpu-v5p-8", "Trainium"):
        assert name in names
    assert "a100" not in names

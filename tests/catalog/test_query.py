"""`cheapest`: filters, one row per region, ordering, spot, limits."""

from __future__ import annotations

from polycloud.catalog import Catalog, NetworkPrices, Offering, Region, cheapest


def test_cheapest_h100x8_in_the_eu(catalog: Catalog) -> None:
    rows = cheapest(catalog, accelerator="h100", count=8, jurisdiction="EU")
    assert rows
    prices = [r.price_usd for r in rows]
    assert prices == sorted(prices)
    assert all(r.jurisdiction == "EU" for r in rows)
    assert all(r.offering.accelerator == "H100" and r.offering.accelerator_count >= 8 for r in rows)
    keys = [(r.offering.provider, r.offering.region) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r.offering.provider for r in rows} == {"aws", "gcp", "azure"}
    assert rows[0].city and rows[0].country


def test_per_region_keeps_the_cheapest(catalog: Catalog) -> None:
    every = cheapest(catalog, accelerator="T4", region="us-central1", per_region=False, limit=0)
    best = cheapest(catalog, accelerator="T4", region="us-central1")
    assert len(best) == 1 and len(every) > 1
    assert best[0].price_usd == min(r.price_usd for r in every)
    assert best[0].offering.instance_type == "n1-standard-4-t4"


def test_count_is_a_minimum(catalog: Catalog) -> None:
    rows = cheapest(
        catalog, accelerator="A100", count=3, provider="gcp", region="us-central1", per_region=False
    )
    assert {r.offering.accelerator_count for r in rows} == {4, 8, 16}


def test_region_filter_accepts_provider_slash_region(catalog: Catalog) -> None:
    rows = cheapest(catalog, accelerator=None, region="aws/us-east-1", per_region=False, limit=0)
    assert rows and all((r.offering.provider, r.offering.region) == ("aws", "us-east-1") for r in rows)


def test_spot_ranks_by_spot_and_skips_unknown(catalog: Catalog) -> None:
    rows = cheapest(catalog, accelerator="A100", count=8, spot=True, per_region=False, limit=0)
    assert rows
    assert all(r.offering.spot_hourly_usd == r.price_usd for r in rows)
    assert [r.price_usd for r in rows] == sorted(r.price_usd for r in rows)
    on_demand = cheapest(catalog, accelerator="A100", count=8, per_region=False, limit=0)
    assert len(on_demand) > len(rows)  # some have no spot price


def test_min_vcpus_memory_and_limit(catalog: Catalog) -> None:
    rows = cheapest(catalog, accelerator=None, min_vcpus=64, min_memory_gib=512, limit=5)
    assert len(rows) == 5
    assert all(r.offering.vcpus >= 64 and r.offering.memory_gib >= 512 for r in rows)


def test_nothing_matches(catalog: Catalog) -> None:
    assert cheapest(catalog, accelerator="H100", count=64) == []
    assert cheapest(catalog, accelerator="no-such-gpu") == []


def test_ties_break_towards_fewer_accelerators() -> None:
    def offering(name: str, count: float, price: float) -> Offering:
        return Offering("x", "r", name, "G", count, 4, 16, price, None)

    small = Catalog(
        regions=[Region("x", "r", "Town", "DE", "EU", 50.0, 8.0)],
        offerings=[offering("b-big", 2, 1.0), offering("a-small", 1, 1.0), offering("c", 1, 2.0)],
        network={("x", "*"): NetworkPrices(0.1, 0.02)},
        rtt_ms={},
    )
    rows = cheapest(small, accelerator="g")
    assert [r.offering.instance_type for r in rows] == ["a-small"]
    assert (rows[0].city, rows[0].jurisdiction) == ("Town", "EU")
    assert small.network("x", "elsewhere") == NetworkPrices(0.1, 0.02)

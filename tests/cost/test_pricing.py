"""Pricing observed usage: replica-seconds at the plan's hourly price, prorated reads, transfer prices."""

from __future__ import annotations

import pytest

from polycloud.cost import compute_usd, prorated_gb

from .support import assignment, cluster, prices, service


def test_replica_seconds_are_priced_per_hour() -> None:
    assert compute_usd(3 * 3600, 0.5) == pytest.approx(1.5)
    assert compute_usd(90, 0.72) == pytest.approx(0.018)


def test_a_monthly_volume_is_prorated_over_730_hours() -> None:
    assert prorated_gb(730, 3600) == pytest.approx(1.0)
    assert prorated_gb(200, 730 * 3600) == pytest.approx(200)


def test_the_stored_hourly_price_wins_and_the_planners_is_the_fallback() -> None:
    book = prices(cluster("acme", "acme", 0.5))
    resources = service("fraud").spec.resources
    assert book.hourly([assignment("acme", 0.42)], "acme", resources, spot=False) == 0.42
    assert book.hourly([{"cluster": "acme", "role": "active"}], "acme", resources, spot=False) == 0.5
    assert book.hourly([], "nowhere", resources, spot=False) is None


def test_spot_prices_apply_only_where_known() -> None:
    book = prices(cluster("acme", "acme", 1.0, spot=0.3), cluster("bare", "bare", 1.0))
    resources = service("fraud").spec.resources
    assert book.offering_hourly("acme", resources, spot=True) == 0.3
    assert book.offering_hourly("bare", resources, spot=True) == 1.0


def test_transfer_follows_design_section_4() -> None:
    book = prices(
        cluster("a1", "acme", 1.0, egress=0.09),
        cluster("a2", "acme", 1.0, egress=0.09),
        cluster("a3", "acme", 1.0, egress=0.09, region="dc2"),
        cluster("b", "borealis", 1.0, egress=0.05),
    )
    assert book.transfer("a1", "a2") == 0.0  # same provider and region
    assert book.transfer("a1", "a3") == pytest.approx(0.045)  # inter-region
    assert book.transfer("a1", "b") == pytest.approx(0.09)  # the source's internet egress
    assert book.transfer("b", "a1") == pytest.approx(0.05)
    assert book.transfer("a1", "gone") is None
    assert book.provider("b") == "borealis" and book.provider("gone") == "unknown"

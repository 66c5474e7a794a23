"""Showback rows by service, cluster, provider or label; chargeback rows; the --since window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from polycloud.cost import CostLine, chargeback, group, parse_since, report
from polycloud.errors import UserError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def line(workload: str, cluster: str, category: str, usd: float, team: str | None = "risk") -> CostLine:
    provider = cluster.split("-")[0]
    labels = {"team": team} if team else {}
    return CostLine(workload, "Service", cluster, provider, category, usd, labels=labels)


LINES = [
    line("fraud", "aws-use1", "compute", 10.0),
    line("fraud", "aws-use1", "egress", 1.5),
    line("fraud", "gcp-euw4", "compute", 4.0),
    line("triage", "gcp-euw4", "compute", 2.25, team="ops"),
    line("batch", "aws-use1", "compute", 0.125, team=None),
]


def test_rows_by_service_add_compute_and_egress_dearest_first() -> None:
    rows = group(LINES, "service")
    assert [(r.key, r.computeUSD, r.egressUSD, r.totalUSD) for r in rows] == [
        ("fraud", 14.0, 1.5, 15.5),
        ("triage", 2.25, 0.0, 2.25),
        ("batch", 0.125, 0.0, 0.125),
    ]


def test_rows_by_cluster_provider_and_label() -> None:
    assert {r.key: r.totalUSD for r in group(LINES, "cluster")} == {"aws-use1": 11.625, "gcp-euw4": 6.25}
    assert {r.key: r.totalUSD for r in group(LINES, "provider")} == {"aws": 11.625, "gcp": 6.25}
    assert {r.key: r.totalUSD for r in group(LINES, "team")} == {"risk": 15.5, "ops": 2.25, "(none)": 0.125}


def test_the_json_report_has_exactly_the_documented_shape() -> None:
    data = report(LINES, "cluster")
    assert set(data) == {"rows", "totalUSD"}
    assert all(set(r) == {"key", "computeUSD", "egressUSD", "totalUSD"} for r in data["rows"])
    assert data["totalUSD"] == 17.875 == pytest.approx(sum(r["totalUSD"] for r in data["rows"]))


def test_tiny_sums_keep_a_millionth_of_a_dollar() -> None:
    data = report([line("a", "x", "compute", 0.0000014), line("a", "x", "compute", 0.0000014)], "service")
    assert data["totalUSD"] == 0.000003 and data["rows"][0]["totalUSD"] == 0.000003


def test_chargeback_has_one_row_per_label_value_workload_and_cluster() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = chargeback(LINES, "team", start, NOW)
    assert [(r["team"], r["workload"], r["cluster"], r["totalUSD"]) for r in rows] == [
        ("(none)", "batch", "aws-use1", 0.125),
        ("ops", "triage", "gcp-euw4", 2.25),
        ("risk", "fraud", "aws-use1", 11.5),
        ("risk", "fraud", "gcp-euw4", 4.0),
    ]
    assert rows[2]["egressUSD"] == 1.5 and rows[2]["periodStart"] == "2026-11-01T00:00:00+00:00"
    assert rows[2]["periodEnd"] == NOW.isoformat()


def test_since_takes_durations_and_dates() -> None:
    assert parse_since("7d", NOW) == datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
    assert parse_since("12h", NOW) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert parse_since("30m", NOW) == datetime(2026, 11, 23, 11, 30, tzinfo=UTC)
    assert parse_since("2w", NOW) == datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since(None, NOW) is None


@pytest.mark.parametrize("bad", ["seven days", "7y", "-3d", "2026-13-01"])
def test_a_bad_since_is_a_clear_error(bad: str) -> None:
    with pytest.raises(UserError, match="--since must be a duration"):
        parse_since(bad, NOW)


def test_a_bad_grouping_key_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="--by must be"):
        group(LINES, "team name!")

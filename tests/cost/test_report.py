"""Showback rows by service, cluster, provider or label; chargeback rows; the --since window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from polycloud.cost import CostLine, TokenLine, chargeback, group, parse_since, report, token_report
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


# -- LLM tokens: cost per 1M tokens ---------------------------------------------------------------------


def replicas(workload: str, cluster: str, usd: float, team: str = "nlp", revision: int = 1) -> CostLine:
    provider = cluster.split("-")[0]
    return CostLine(
        workload, "Service", cluster, provider, "compute", usd, revision=revision, labels={"team": team}
    )


TOKEN_LINES = [
    replicas("chat", "aws-use1", 3.0),
    replicas("chat", "gcp-euw4", 1.0),  # a standby: costs, serves nothing
    CostLine(
        "chat", "Service", "aws-use1", "aws", "egress", 9.0, source="dataset-reads", labels={"team": "nlp"}
    ),
    replicas("summarise", "aws-use1", 0.5, team="docs"),
    replicas("fraud", "aws-use1", 7.0, team="risk"),  # an ONNX service: no tokens, not in the token rows
]
SERVED = [
    TokenLine("chat", "aws-use1", 1_000_000, 500_000),
    TokenLine("summarise", "aws-use1", 200_000, 50_000),
    TokenLine("summarise", "onprem-a", 0, 0),
]


def test_cost_per_million_tokens_is_the_replica_cost_over_the_tokens_served_there() -> None:
    data = token_report(TOKEN_LINES, SERVED, "service")
    assert data is not None
    detail = {(r["service"], r["cluster"]): r for r in data["services"]}
    assert set(detail) == {("chat", "aws-use1"), ("chat", "gcp-euw4"), ("summarise", "aws-use1")}
    chat = detail[("chat", "aws-use1")]
    assert (chat["team"], chat["provider"], chat["promptTokens"], chat["completionTokens"]) == (
        "nlp",
        "aws",
        1_000_000,
        500_000,
    )
    assert chat["replicaUSD"] == 3.0 and chat["usdPerMillionTokens"] == 2.0  # $3 / 1.5M tokens × 1M
    standby = detail[("chat", "gcp-euw4")]
    assert (
        standby["totalTokens"] == 0
        and standby["replicaUSD"] == 1.0
        and standby["usdPerMillionTokens"] is None
    )
    assert detail[("summarise", "aws-use1")]["usdPerMillionTokens"] == 2.0  # $0.5 / 250k tokens

    by_service = {r["key"]: r for r in data["rows"]}
    assert list(by_service) == ["chat", "summarise"]  # most tokens first
    assert by_service["chat"]["replicaUSD"] == 4.0 and by_service["chat"][
        "usdPerMillionTokens"
    ] == pytest.approx(4.0 / 1.5)
    assert (data["totalTokens"], data["replicaUSD"]) == (1_750_000, 4.5)
    assert data["usdPerMillionTokens"] == pytest.approx(4.5 / 1.75)


def test_token_rows_group_by_team_cluster_or_provider_like_the_cost_rows() -> None:
    by_team = {r["key"]: r for r in (token_report(TOKEN_LINES, SERVED, "team") or {})["rows"]}
    assert {k: r["totalTokens"] for k, r in by_team.items()} == {"nlp": 1_500_000, "docs": 250_000}
    by_cluster = {
        r["key"]: r["replicaUSD"] for r in (token_report(TOKEN_LINES, SERVED, "cluster") or {})["rows"]
    }
    assert by_cluster == {"aws-use1": 3.5, "gcp-euw4": 1.0}
    by_provider = {r["key"] for r in (token_report(TOKEN_LINES, SERVED, "provider") or {})["rows"]}
    assert by_provider == {"aws", "gcp"}


def test_no_tokens_no_token_report_and_the_cost_rows_are_unchanged() -> None:
    assert token_report(TOKEN_LINES, [], "service") is None
    assert token_report(TOKEN_LINES, [TokenLine("chat", "aws-use1", 0, 0)], "service") is None
    assert report(TOKEN_LINES, "service") == report(TOKEN_LINES, "service")  # pure: nothing added to it
    assert set(report(TOKEN_LINES, "service")) == {"rows", "totalUSD"}


def test_a_service_without_ledger_lines_takes_its_labels_from_the_token_line() -> None:
    data = token_report([], [TokenLine("fresh", "onprem-a", 10, 10, {"team": "lab"})], "team")
    assert data is not None
    [row] = data["services"]
    assert (row["team"], row["provider"], row["replicaUSD"], row["usdPerMillionTokens"]) == (
        "lab",
        "(none)",
        0.0,
        0.0,
    )
    assert [r["key"] for r in data["rows"]] == ["lab"]


def test_the_newest_revisions_labels_name_the_team() -> None:
    lines = [
        replicas("chat", "aws-use1", 1.0, team="old", revision=1),
        replicas("chat", "aws-use1", 1.0, team="new", revision=2),
    ]
    data = token_report(lines, [TokenLine("chat", "aws-use1", 1, 1)], "service")
    assert data is not None and [r["team"] for r in data["services"]] == ["new"]

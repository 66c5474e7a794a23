"""GET /api/v1/dashboard/spend: spend per hour, keyed as /cost keys, scoped to a token's project."""

from __future__ import annotations

import pytest

from polycloud.state.ledger import LedgerTag, TotalAccrual

from .conftest import Governed


def bill(gov: Governed, workload: str, project: str, usd: float, category: str = "compute") -> None:
    """Accrue `usd` at once (a running total needs no elapsed time)."""
    tag = LedgerTag(
        workload=workload,
        kind="Service",
        revision=1,
        cluster="west",
        provider="acme",
        category=category,  # type: ignore[arg-type]
        source="replicas" if category == "compute" else "dataset-reads",
        labels={"project": project, "team": f"team-{project}"},
        project=project,
    )
    gov.store.accrue_cost([], [TotalAccrual(tag, usd, usd)], max_gap_s=60)


@pytest.fixture
def billed(governed: Governed) -> Governed:
    bill(governed, "alpha-svc", "alpha", 3.0)
    bill(governed, "alpha-svc", "alpha", 0.5, "egress")
    bill(governed, "beta-svc", "beta", 1.0)
    return governed


def test_a_fleet_viewer_gets_aligned_series_that_agree_with_cost(billed: Governed) -> None:
    headers = billed.token("viewer")
    got = billed.client.get("/api/v1/dashboard/spend?by=team&since=7d", headers=headers)
    assert got.status_code == 200, got.text
    body = got.json()
    [hour] = body["hours"]
    assert hour.endswith(":00:00+00:00")
    assert body["series"] == {"team-alpha": [3.5], "team-beta": [1.0]}
    assert body["egress"] == {"team-alpha": [0.5], "team-beta": [0.0]}
    cost = billed.client.get("/api/v1/cost?by=team&since=7d", headers=headers).json()
    assert body["totalUSD"] == cost["totalUSD"] == 4.5
    assert list(body["series"]) == [r["key"] for r in cost["rows"]]


def test_a_project_token_sees_only_its_project(billed: Governed) -> None:
    beta = billed.client.get("/api/v1/dashboard/spend?by=service", headers=billed.token("viewer", "beta"))
    assert beta.json()["series"] == {"beta-svc": [1.0]} and beta.json()["totalUSD"] == 1.0


def test_defaults_group_by_service_over_seven_days(billed: Governed) -> None:
    body = billed.client.get("/api/v1/dashboard/spend", headers=billed.token("viewer")).json()
    assert body["by"] == "service" and set(body["series"]) == {"alpha-svc", "beta-svc"}


@pytest.mark.parametrize(
    ("query", "reason"),
    [("by=a%20b", "--by must be"), ("since=soon", "--since must be"), ("by=" + "x" * 300, "invalid request")],
)
def test_bad_keys_and_windows_are_400_with_a_reason(governed: Governed, query: str, reason: str) -> None:
    got = governed.client.get(f"/api/v1/dashboard/spend?{query}", headers=governed.token("viewer"))
    assert got.status_code == 400 and reason in got.json()["error"]


def test_it_needs_a_token_and_is_documented(governed: Governed) -> None:
    assert governed.client.get("/api/v1/dashboard/spend").status_code == 401
    operation = governed.client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/dashboard/spend"]["get"]
    assert operation["tags"] == ["dashboard"] and "aligned on `hours`" in operation["description"]

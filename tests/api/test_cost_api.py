"""/api/v1/cost, /cost/export, /cost/budgets and /advice: figures from the ledger, scoped by project."""

from __future__ import annotations

import pytest

from polycloud.catalog import load_catalog
from polycloud.controller.accounting import Accountant
from polycloud.exchange import LoadReport
from polycloud.state import ReplicaRecord

from .conftest import Governed


def accrue(gov: Governed) -> None:
    """Two accountant passes over one ready replica of each service."""
    gov.store.replace_replicas(
        [
            ReplicaRecord(f"{name}-west-0", name, "west", "active", 1, None, None, "ready")
            for name in ("alpha-svc", "beta-svc")
        ]
    )
    accountant = Accountant(gov.store, load_catalog())
    accountant.step()
    accountant.step()
    # the passes ran microseconds apart: check the arithmetic, not the clock
    assert all(line.usd == pytest.approx(line.quantity / 3600 * 0.12) for line in gov.store.cost_lines())


def test_a_fleet_token_sees_every_project_and_a_project_token_its_own(governed: Governed) -> None:
    accrue(governed)
    fleet = governed.client.get("/api/v1/cost", headers=governed.token("viewer")).json()
    assert {r["key"] for r in fleet["rows"]} == {"alpha-svc", "beta-svc"}
    alpha = governed.client.get("/api/v1/cost?by=cluster", headers=governed.token("viewer", "alpha")).json()
    [row] = alpha["rows"]
    assert row["key"] == "west" and alpha["totalUSD"] <= fleet["totalUSD"]
    exported = governed.client.get(
        "/api/v1/cost/export?label=project", headers=governed.token("viewer", "beta")
    )
    assert {r["project"] for r in exported.json()["rows"]} <= {"beta"}


def test_bad_windows_and_keys_are_400_with_a_reason(governed: Governed) -> None:
    headers = governed.token("viewer")
    bad_since = governed.client.get("/api/v1/cost?since=soon", headers=headers)
    assert bad_since.status_code == 400 and "--since must be" in bad_since.json()["error"]
    bad_by = governed.client.get("/api/v1/cost?by=a%20b", headers=headers)
    assert bad_by.status_code == 400 and "--by must be" in bad_by.json()["error"]


def test_budgets_and_advice_answer_for_a_fleet_without_either(governed: Governed) -> None:
    headers = governed.token("viewer")
    assert governed.client.get("/api/v1/cost/budgets", headers=headers).json() == {"budgets": []}
    advice = governed.client.get("/api/v1/advice", headers=headers).json()
    assert advice["notes"] == [] and advice["monthlySavingUSD"] == 0.0


def test_tokens_served_show_with_their_cost_per_million_and_only_to_their_project(governed: Governed) -> None:
    accrue(governed)
    before = governed.client.get("/api/v1/cost?by=project", headers=governed.token("viewer")).json()
    assert "tokens" not in before  # no LLM traffic: the report is exactly what it was
    report = LoadReport(
        "alpha-svc", "west", 1.0, 1.0, 5.0, 0.0, 9.0, prompt_tokens=30_000, completion_tokens=10_000
    )
    governed.store.report_load("gw-1", [report])
    fleet = governed.client.get("/api/v1/cost?by=project", headers=governed.token("viewer")).json()
    assert (fleet["rows"], fleet["totalUSD"]) == (before["rows"], before["totalUSD"])  # figures unchanged
    tokens = fleet["tokens"]
    [line] = tokens["services"]
    replica_usd = sum(ln.usd for ln in governed.store.cost_lines() if ln.tag.workload == "alpha-svc")
    assert (line["service"], line["cluster"], line["team"], line["totalTokens"]) == (
        "alpha-svc",
        "west",
        "(none)",
        40_000,
    )
    assert line["replicaUSD"] == pytest.approx(replica_usd, abs=1e-6)
    assert line["usdPerMillionTokens"] == pytest.approx(
        replica_usd / 40_000 * 1e6, abs=1e-6
    )  # to a millionth
    assert [r["key"] for r in tokens["rows"]] == ["alpha"]  # grouped by the project label, as asked
    alpha = governed.client.get("/api/v1/cost", headers=governed.token("viewer", "alpha")).json()
    assert alpha["tokens"]["totalTokens"] == 40_000
    beta = governed.client.get("/api/v1/cost", headers=governed.token("viewer", "beta")).json()
    assert "tokens" not in beta

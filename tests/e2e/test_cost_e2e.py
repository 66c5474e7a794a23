"""Cost showback as a user drives it: a running fleet accrues replica-seconds × price into the ledger."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import Fleet, Polycloud

from polycloud.state import Store

pytestmark = pytest.mark.e2e

HOURLY = {"acme": 0.5, "borealis": 0.51}
"""The fleet fixture's private-site prices (0.5 + index / 100)."""
RUN_S = 6.0


def api_total(polycloud: Polycloud) -> float:
    response = polycloud.api().get("/cost")
    response.raise_for_status()
    return float(response.json()["totalUSD"])


def settled(polycloud: Polycloud) -> float | None:
    """The ledger total once it has stopped growing (no replica runs any more)."""
    before = api_total(polycloud)
    time.sleep(2.5)  # longer than one accounting pass
    after = api_total(polycloud)
    return after if after == before and after > 0 else None


def cost_json(polycloud: Polycloud, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(polycloud.ok("cost", *args).stdout)
    return data


def test_a_running_fleet_costs_replica_seconds_times_price(polycloud: Polycloud, fleet: Fleet) -> None:
    polycloud.ok("apply", fleet.write(), "--yes")
    polycloud.expect_exactly(fleet)
    polycloud.eventually(lambda: api_total(polycloud) > 0, "the ledger to accrue")
    time.sleep(RUN_S)
    polycloud.ok("apply", fleet.without("alpha").without("beta").write("bare.yaml"), "--yes")
    total = polycloud.eventually(lambda: settled(polycloud), "the ledger to stop growing")

    data = cost_json(polycloud, "--json")
    assert set(data) == {"rows", "totalUSD"} and data["totalUSD"] == total
    assert {r["key"] for r in data["rows"]} == {"alpha", "beta"}
    with Store.open(f"sqlite:///{polycloud.home / 'state.db'}") as store:
        lines = [line for line in store.cost_lines() if line.tag.source == "replicas"]
    seconds = {c: sum(line.quantity for line in lines if line.tag.cluster == c) for c in HOURLY}
    assert all(s >= 4 * RUN_S for s in seconds.values())  # 4 replicas per cluster, RUN_S at least
    priced = sum(seconds[c] / 3600 * HOURLY[c] for c in HOURLY)
    assert data["totalUSD"] == pytest.approx(priced, abs=1e-5)

    by_cluster = cost_json(polycloud, "--by", "cluster", "--format", "json")
    rows = {r["key"]: r for r in by_cluster["rows"]}
    assert set(rows) == set(HOURLY)
    for cluster, price in HOURLY.items():
        assert rows[cluster]["computeUSD"] == pytest.approx(seconds[cluster] / 3600 * price, abs=1e-5)
    assert sum(r["totalUSD"] for r in rows.values()) == pytest.approx(by_cluster["totalUSD"], abs=1e-5)
    assert by_cluster["totalUSD"] == data["totalUSD"]

    table = list(
        csv.DictReader(io.StringIO(polycloud.ok("cost", "--by", "provider", "--format", "csv").stdout))
    )
    assert {r["key"] for r in table} == {"acme", "borealis"}
    assert sum(float(r["totalUSD"]) for r in table) == pytest.approx(total, abs=1e-5)

    out = Path(polycloud.root / "chargeback.csv")
    polycloud.ok("cost", "export", "--out", out, "--label", "team", "--since", "1d")
    exported = list(csv.DictReader(out.open()))
    assert {(r["team"], r["workload"], r["cluster"]) for r in exported} == {
        ("(none)", s, c) for s in ("alpha", "beta") for c in HOURLY
    }
    assert sum(float(r["totalUSD"]) for r in exported) == pytest.approx(total, abs=1e-5)
    assert all(r["periodStart"] and r["periodEnd"] for r in exported)


def rightsizing(polycloud: Polycloud, gateway: str) -> dict[str, Any] | None:
    """`advise --json` once it advises fewer replicas of alpha (after some light traffic)."""
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
    for _ in range(5):
        httpx.post(f"{gateway}/v2/models/alpha/infer", json=body, timeout=10).raise_for_status()
    advice: dict[str, Any] = json.loads(polycloud.ok("advise", "--json").stdout)
    found = [a for a in advice["advice"] if a["kind"] == "rightsize" and a["target"].startswith("alpha@")]
    return advice if found else None


def test_budgets_advice_and_bad_input(polycloud: Polycloud, fleet: Fleet) -> None:
    polycloud.ok("apply", fleet.write(), "--yes")
    status = polycloud.expect_exactly(fleet)
    assert json.loads(polycloud.ok("cost", "budgets", "--json").stdout) == {"budgets": []}
    advice = polycloud.eventually(lambda: rightsizing(polycloud, status["gateway"]["url"]), "rightsizing")
    assert set(advice) == {"advice", "monthlySavingUSD", "perRunSavingUSD", "notes"} and advice["notes"] == []
    for a in advice["advice"]:
        if a["kind"] == "rightsize":  # 2 replicas with almost no load: 1 would do
            cluster = a["target"].split("@")[1]
            assert (
                a["savingUSD"] == pytest.approx(HOURLY[cluster] * 730) and "polycloud apply" in a["command"]
            )
    for bad in (("--since", "soon"), ("--by", "no such!")):
        rc, out, err = polycloud.cli("cost", *bad)
        assert rc == 1 and "must be" in err and "Traceback" not in out + err

"""The savings advisor, against figures worked out by hand."""

from __future__ import annotations

import pytest

from polycloud.cost.advisor import (
    ASSUMED_STORAGE_USD_PER_GB_MONTH,
    Deployed,
    ranked,
    replanning,
    replicas_of_datasets,
    rightsizing,
    spot_jobs,
)
from polycloud.placement import Assignment, Placement, Plan

from .support import assignment, cluster, dataset, job, prices, service


def test_underused_replicas_are_rightsized_to_the_load() -> None:
    # 4 replicas × 4 in flight each = 16 of capacity; a load of 1.0 is 6.25 %, under the 25 % mark.
    fraud = Deployed(service("fraud", replicas=4), [assignment("acme", 0.5, replicas=4)])
    [advice] = rightsizing([fraud], {("fraud", "acme"): 1.0}, {("fraud", "acme"): 4})
    assert advice.kind == "rightsize" and advice.target == "fraud@acme"
    assert advice.savingUSD == pytest.approx(3 * 0.5 * 730)  # keep ceil(1 / 4) = 1 replica: $1,095/month
    assert "spec.replicas: 1" in advice.command and "polycloud apply" in advice.command


def test_rightsizing_respects_the_autoscaling_floor_and_target() -> None:
    scaled = service(
        "fraud", replicas=4, autoscaling={"minReplicas": 2, "maxReplicas": 8, "targetInFlight": 10}
    )
    fraud = Deployed(scaled, [assignment("acme", 0.5, replicas=4)])
    [advice] = rightsizing([fraud], {("fraud", "acme"): 3.0}, {("fraud", "acme"): 5})
    assert advice.savingUSD == pytest.approx(3 * 0.5 * 730)  # 5 running → max(2, ceil(3 / 10)) = 2
    assert "spec.autoscaling.minReplicas: 2" in advice.command


def test_busy_or_unreported_or_standby_replicas_are_left_alone() -> None:
    fraud = Deployed(
        service("fraud", replicas=2),
        [assignment("acme", 0.5), assignment("bore", 0.6, role="standby", replicas=1)],
    )
    running = {("fraud", "acme"): 2, ("fraud", "bore"): 1}
    assert rightsizing([fraud], {("fraud", "acme"): 2.0}, running) == []  # 25 % of 8: not under
    assert rightsizing([fraud], {}, running) == []  # no load report: no evidence
    assert rightsizing([fraud], {("fraud", "bore"): 0.0}, running) == []  # standby is insurance


def test_a_cheaper_plan_now_is_advised_with_the_difference() -> None:
    recorded = Deployed(service("fraud"), [assignment("acme", 0.5, cost=730.0)])
    cheaper = Placement(
        workload="fraud",
        kind="Service",
        pattern="single",
        assignments=[Assignment("bore", "active", 2, "node", 0.4, False, costUSD=584.0)],
        computeUSD=584.0,
        egressUSD=0.0,
        totalUSD=584.0,
        explanation="",
    )
    [advice] = replanning([recorded], Plan(placements=[cheaper], totalUSD=584.0))
    assert advice.savingUSD == pytest.approx(146.0) and advice.per == "month"
    assert "bore (active)" in advice.detail
    same = Plan(placements=[cheaper.__class__(**{**cheaper.__dict__, "totalUSD": 730.0})])
    assert replanning([recorded], same) == []


def test_jobs_on_demand_are_advised_spot_where_it_is_cheaper() -> None:
    book = prices(cluster("acme", "acme", 1.0, spot=0.3), cluster("bare", "bare", 1.0))
    train = Deployed(job("train", nodes=2, hours=10), [assignment("acme", 1.0, replicas=2)])
    plain = Deployed(job("plain"), [assignment("bare", 1.0, replicas=2)])
    already = Deployed(job("spotty", spot=True), [assignment("acme", 0.3, replicas=2)])
    [advice] = spot_jobs([train, plain, already], book)
    assert (advice.target, advice.per) == ("train", "run")
    assert advice.savingUSD == pytest.approx(2 * 10 * (1.0 - 0.3))  # $14 per run
    assert "spec.spot: true" in advice.command


def test_a_dataset_copy_is_advised_where_egress_outweighs_storage() -> None:
    book = prices(cluster("acme", "acme", 1.0, egress=0.09), cluster("bore", "bore", 1.0, egress=0.05))
    data = {"logs": dataset("logs", "acme", 100), "tiny": dataset("tiny", "acme", 1000)}
    heavy = Deployed(
        service("fraud", reads=[{"dataset": "logs", "gbPerMonth": 1000}]), [assignment("bore", 0.5)]
    )
    light = Deployed(
        service("triage", reads=[{"dataset": "tiny", "gbPerMonth": 10}]), [assignment("bore", 0.5)]
    )
    local = Deployed(
        service("local", reads=[{"dataset": "logs", "gbPerMonth": 5000}]), [assignment("acme", 0.5)]
    )
    [advice] = replicas_of_datasets([heavy, light, local], data, book)
    storage = 100 * ASSUMED_STORAGE_USD_PER_GB_MONTH
    assert advice.target == "logs→bore"
    assert advice.savingUSD == pytest.approx(1000 * 0.09 - storage)  # $90 egress − $2.30 storage
    assert "$9.00 once to copy" in advice.detail and "assumed" in advice.detail


def test_advice_is_ranked_by_saving() -> None:
    book = prices(cluster("acme", "acme", 1.0, spot=0.3))
    train = Deployed(job("train", nodes=1, hours=1), [assignment("acme", 1.0, replicas=1)])
    fraud = Deployed(service("fraud", replicas=4), [assignment("acme", 0.5, replicas=4)])
    found = ranked(
        spot_jobs([train], book), rightsizing([fraud], {("fraud", "acme"): 0.0}, {("fraud", "acme"): 4})
    )
    assert [a.kind for a in found] == ["rightsize", "spot"]

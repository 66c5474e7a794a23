"""Budgets per label value, the egress limit, and where the plan put workloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polycloud.catalog import Catalog
from polycloud.placement import plan_fleet
from polycloud.policy import evaluate

from .support import CLUSTERS, DIGEST_A, SERVICE, check, line_of, load, only, policy, write

READER = (
    SERVICE % DIGEST_A
) + "  placement: {clusters: [eu]}\n  reads: [{dataset: public, gbPerMonth: 1000}]\n"
PUBLIC = (
    "---\napiVersion: polycloud/v1\nkind: Dataset\nmetadata: {name: public}\nspec: {cluster: us, sizeGB: 1}\n"
)


def monthly(catalog: Catalog, path: Path) -> tuple[float, float]:
    """The planned total and egress of the fleet at `path`."""
    plan = plan_fleet(load(catalog, path), catalog)
    return plan.totalUSD, sum(p.egressUSD for p in plan.placements)


def test_a_budget_above_the_planned_cost_passes(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_A)
    total, _ = monthly(catalog, path)
    rules = f"budgets: [{{label: team, value: web, maxMonthlyUSD: {total + 0.01}}}]"
    assert check(catalog, write(tmp_path, CLUSTERS, SERVICE % DIGEST_A, policy(rules)), planned=True).clean


def test_a_budget_below_the_planned_cost_names_the_workloads_and_the_overrun(
    catalog: Catalog, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        CLUSTERS,
        SERVICE % DIGEST_A,
        policy("budgets: [{label: team, value: web, maxMonthlyUSD: 1}]"),
    )
    v = only(check(catalog, path, planned=True))
    assert (v.rule, v.document, v.field) == ("budgets[0]", "api", "metadata.labels.team")
    assert v.line == line_of(path, "name: api")
    assert "workloads labelled team=web cost $" in v.message and "over the budget of $1.00" in v.message
    assert "raise maxMonthlyUSD in policy org" in v.remedy


def test_a_budget_counts_only_its_label_value(catalog: Catalog, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        CLUSTERS,
        SERVICE % DIGEST_A,
        policy("budgets: [{label: team, value: ml, maxMonthlyUSD: 0}]"),
    )
    assert check(catalog, path, planned=True).clean


def test_budgets_and_egress_need_a_plan(catalog: Catalog, tmp_path: Path) -> None:
    rules = "budgets: [{label: team, value: web, maxMonthlyUSD: 0}]\nmaxEgressUSDPerMonth: 0"
    path = write(tmp_path, CLUSTERS, PUBLIC, READER, policy(rules))
    assert check(catalog, path).clean
    assert len(check(catalog, path, planned=True).violations) == 2


def test_egress_within_the_limit_passes(catalog: Catalog, tmp_path: Path) -> None:
    _, egress = monthly(catalog, write(tmp_path, CLUSTERS, PUBLIC, READER))
    assert egress > 0
    path = write(tmp_path, CLUSTERS, PUBLIC, READER, policy(f"maxEgressUSDPerMonth: {egress + 0.01}"))
    assert check(catalog, path, planned=True).clean


def test_egress_over_the_limit_points_at_the_biggest_reader(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, PUBLIC, READER, policy("maxEgressUSDPerMonth: 1"))
    v = only(check(catalog, path, planned=True))
    assert (v.rule, v.document, v.field) == ("maxEgressUSDPerMonth", "api", "spec.reads")
    assert v.line == line_of(path, "reads:")
    assert "over the limit of $1.00" in v.message


@dataclass(frozen=True)
class At:
    cluster: str


@dataclass(frozen=True)
class Planned:
    workload: str
    assignments: list[At] = field(default_factory=list)
    totalUSD: float = 0.0
    egressUSD: float = 0.0


def test_a_plan_that_uses_a_forbidden_cluster_is_a_violation(catalog: Catalog, tmp_path: Path) -> None:
    text = (SERVICE % DIGEST_A) + "  reads: [{dataset: records, gbPerMonth: 1}]\n"
    fleet = load(catalog, write(tmp_path, CLUSTERS, text, policy("providers: [onprem]")))
    assert evaluate(fleet, catalog, plan=[Planned("api", [At("eu")])]).clean
    report = evaluate(fleet, catalog, plan=[Planned("api", [At("us")])])
    assert sorted(v.rule for v in report.violations) == ["enforceResidency", "providers"]
    assert all("is planned on cluster us" in v.message for v in report.violations)

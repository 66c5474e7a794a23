"""Properties over random fleets: no policies, no violations; the planner's plans obey site rules."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from tests.placement.fleets import Doc, fleets

from polycloud.catalog import Catalog
from polycloud.placement import plan_fleet
from polycloud.policy import evaluate
from polycloud.services.documents import documents_to_fleet

RELAXED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@RELAXED
@given(fleets())
def test_a_fleet_without_policies_never_has_violations(catalog: Catalog, docs: list[Doc]) -> None:
    fleet = documents_to_fleet([d for d in docs if d["kind"] != "Policy"], catalog)
    plan = plan_fleet(fleet, catalog)
    report = evaluate(fleet, catalog, plan=plan.placements, digests={}, secrets=set())
    assert report.violations == []
    assert report.notes == []


@RELAXED
@given(fleets())
def test_the_planner_never_places_a_workload_where_a_policy_forbids(
    catalog: Catalog, docs: list[Doc]
) -> None:
    fleet = documents_to_fleet(docs, catalog)
    report = evaluate(fleet, catalog, plan=plan_fleet(fleet, catalog).placements)
    assert [str(v) for v in report.violations if "is planned on" in v.message] == []

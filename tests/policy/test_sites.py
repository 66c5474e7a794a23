"""Allowed providers, regions and jurisdictions, residency, and selectors: each rule passes and fails."""

from __future__ import annotations

from pathlib import Path

from polycloud.catalog import Catalog
from polycloud.placement import plan_fleet

from .support import CLUSTERS, DIGEST_A, SERVICE, check, line_of, load, only, policy, write


def service(placement: str = "", reads: str = "", labels: str = "{team: web, env: prod}") -> str:
    text = (SERVICE % DIGEST_A).replace("{team: web, env: prod}", labels)
    if placement:
        text += f"  placement: {placement}\n"
    if reads:
        text += f"  reads: {reads}\n"
    return text


def test_pins_within_the_allowed_providers_pass(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, service("{clusters: [eu]}"), policy("providers: [onprem]"))
    assert check(catalog, path, planned=True).violations == []


def test_a_pinned_cluster_of_a_forbidden_provider_names_the_rule_line_and_remedy(
    catalog: Catalog, tmp_path: Path
) -> None:
    path = write(tmp_path, CLUSTERS, service("{clusters: [us]}"), policy("providers: [onprem]"))
    v = only(check(catalog, path))
    assert (v.policy, v.rule, v.kind, v.document) == ("org", "providers", "Service", "api")
    assert v.field == "spec.placement.clusters[0]"
    assert (v.file, v.line) == (str(path), line_of(path, "placement:"))
    assert v.ruleAt == f"{path}:{line_of(path, 'providers: [onprem]')}:3"
    assert "provider aws is not allowed" in v.message
    assert "remove us from spec.placement.clusters" in v.remedy
    assert str(v).startswith(f"{path}:{v.line}:{v.col}: spec.placement.clusters[0]: Service api:")


def test_a_placement_provider_outside_the_policy_is_a_violation(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, service("{providers: [onprem, aws]}"), policy("providers: [onprem]"))
    v = only(check(catalog, path))
    assert (v.rule, v.field) == ("providers", "spec.placement.providers[1]")


def test_regions_pass_and_fail(catalog: Catalog, tmp_path: Path) -> None:
    ok = write(tmp_path, CLUSTERS, service("{clusters: [us]}"), policy("regions: [aws/us-east-1]"))
    assert check(catalog, ok, planned=True).violations == []
    bad = write(
        tmp_path,
        CLUSTERS,
        service("{providers: [onprem]}"),
        policy("regions: [aws/us-east-1]"),
        name="b.yaml",
    )
    v = only(check(catalog, bad))
    assert (v.rule, v.field) == ("regions", "spec.placement.providers[0]")
    assert "none of its regions is allowed" in v.message


def test_jurisdictions_pass_and_fail(catalog: Catalog, tmp_path: Path) -> None:
    ok = write(tmp_path, CLUSTERS, service("{jurisdictions: [EU]}"), policy("jurisdictions: [EU]"))
    assert check(catalog, ok, planned=True).violations == []
    bad = write(
        tmp_path, CLUSTERS, service("{jurisdictions: [US]}"), policy("jurisdictions: [EU]"), name="b.yaml"
    )
    v = only(check(catalog, bad))
    assert (v.rule, v.field) == ("jurisdictions", "spec.placement.jurisdictions[0]")
    assert "add it to jurisdictions of policy org" in v.remedy


def test_reading_resident_data_from_an_allowed_place_passes(catalog: Catalog, tmp_path: Path) -> None:
    text = service("{clusters: [eu]}", "[{dataset: records, gbPerMonth: 5}]")
    path = write(tmp_path, CLUSTERS, text, policy("requiredLabels: []"))
    assert check(catalog, path, planned=True).violations == []


def test_a_pin_that_contradicts_residency_is_a_violation(catalog: Catalog, tmp_path: Path) -> None:
    text = service("{clusters: [us]}", "[{dataset: records, gbPerMonth: 5}]")
    path = write(tmp_path, CLUSTERS, text, policy("requiredLabels: []"))
    v = only(check(catalog, path))
    assert (v.rule, v.field) == ("enforceResidency", "spec.placement.clusters[0]")
    assert "dataset records must stay in EU" in v.message
    assert v.remedy.startswith("place it in EU")


def test_an_allow_list_that_contradicts_residency_is_a_violation(catalog: Catalog, tmp_path: Path) -> None:
    text = service("{jurisdictions: [EU, US]}", "[{dataset: records, gbPerMonth: 5}]")
    path = write(tmp_path, CLUSTERS, text, policy("requiredLabels: []"))
    assert only(check(catalog, path)).field == "spec.placement.jurisdictions[1]"


def test_residency_can_be_left_to_the_planner(catalog: Catalog, tmp_path: Path) -> None:
    text = service("{clusters: [us]}", "[{dataset: records, gbPerMonth: 5}]")
    path = write(tmp_path, CLUSTERS, text, policy("enforceResidency: false"))
    assert check(catalog, path).violations == []


def test_residency_is_reported_once_however_many_policies_enforce_it(
    catalog: Catalog, tmp_path: Path
) -> None:
    text = service("{clusters: [us]}", "[{dataset: records, gbPerMonth: 5}]")
    path = write(
        tmp_path, CLUSTERS, text, policy("requiredLabels: []", "a"), policy("requiredLabels: []", "b")
    )
    assert only(check(catalog, path)).policy == "a"


def test_a_dataset_stored_outside_its_residency_is_a_violation(catalog: Catalog, tmp_path: Path) -> None:
    clusters = CLUSTERS.replace("spec: {cluster: eu,", "spec: {cluster: us,")
    text = service("", "[{dataset: records, gbPerMonth: 5}]")
    path = write(tmp_path, clusters, text, policy("requiredLabels: []"))
    v = only(check(catalog, path))
    assert (v.kind, v.document, v.field) == ("Dataset", "records", "spec.cluster")
    assert v.line == line_of(path, "spec: {cluster: us,")


def test_a_resident_dataset_outside_the_allowed_jurisdictions_is_a_violation(
    catalog: Catalog, tmp_path: Path
) -> None:
    text = service("", "[{dataset: records, gbPerMonth: 5}]")
    path = write(tmp_path, CLUSTERS, text, policy("jurisdictions: [US]"))
    report = check(catalog, path)
    assert [(v.rule, v.field) for v in report.violations] == [("jurisdictions", "spec.reads[0].dataset")]


def test_a_selector_limits_a_policy_to_matching_workloads(catalog: Catalog, tmp_path: Path) -> None:
    rules = "selector: {matchLabels: {env: dev}}\nproviders: [onprem]"
    path = write(tmp_path, CLUSTERS, service("{clusters: [us]}"), policy(rules))
    assert check(catalog, path, planned=True).violations == []
    dev = write(
        tmp_path, CLUSTERS, service("{clusters: [us]}", labels="{env: dev}"), policy(rules), name="d.yaml"
    )
    assert only(check(catalog, dev)).rule == "providers"


def test_the_planner_honours_selectors_too(catalog: Catalog, tmp_path: Path) -> None:
    rules = "selector: {matchLabels: {env: dev}}\nproviders: [aws]"
    prod = load(catalog, write(tmp_path, CLUSTERS, service("{clusters: [eu]}"), policy(rules)))
    assert not plan_fleet(prod, catalog).infeasible
    text = service("{clusters: [eu]}", labels="{env: dev}")
    dev = load(catalog, write(tmp_path, CLUSTERS, text, policy(rules), name="d.yaml"))
    (infeasible,) = plan_fleet(dev, catalog).infeasible
    assert any("policy org does not allow provider onprem" in r for r in infeasible.reasons)

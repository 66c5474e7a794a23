"""Hand-written placement cases: each pins one rule of DESIGN.md §4 with figures worked out by hand.

Prices are the shipped catalog's (AWS us-east-1 m6i.large $0.096/h, g4dn.xlarge $0.526/h; GCP
europe-west4 n2-standard-2 $0.10692/h, a2-highgpu-8g $19.4217/h; Azure westeurope D2s_v5 $0.115/h);
each test says which figures decide it.
"""

from __future__ import annotations

import csv
import importlib.resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from polycloud.catalog import load_catalog
from polycloud.placement import plan_fleet
from polycloud.services.documents import documents_to_fleet
from polycloud.spec import load_fleet

from .oracle import Oracle, close

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fleet"

CLUSTERS = {
    "aws-use1": "{provider: aws, region: us-east-1}",
    "aws-euw1": "{provider: aws, region: eu-west-1}",
    "gcp-euw4": "{provider: gcp, region: europe-west4}",
    "azure-weu": "{provider: azure, region: westeurope}",
    "onprem-fra": """
  provider: onprem
  region: frankfurt-dc1
  location: {lat: 50.11, lon: 8.68, jurisdiction: EU}
  instances:
    - {name: dgx-a100, accelerator: A100, acceleratorCount: 8, vcpus: 128, memoryGiB: 1024, hourlyUSD: 9.80}
    - {name: t4-node, accelerator: T4, acceleratorCount: 1, vcpus: 16, memoryGiB: 64, hourlyUSD: 0.62}""",
}


def cluster(name: str, quotas: str = "") -> str:
    """A Cluster document from the table above, with optional `quotas: {...}`."""
    spec = CLUSTERS[name]
    if quotas:
        spec = spec[:-1] + f", quotas: {quotas}}}" if spec.startswith("{") else spec + f"\n  quotas: {quotas}"
    body = f" {spec}" if spec.startswith("{") else spec
    return f"apiVersion: polycloud/v1\nkind: Cluster\nmetadata: {{name: {name}}}\nspec:{body}\n"


def service(name: str, body: str) -> str:
    """A Service document; `body` is the rest of its spec, indented two spaces."""
    return (
        f"apiVersion: polycloud/v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n"
        f"  model: {{uri: s3://models/m.onnx}}\n{body}"
    )


def job(name: str, body: str) -> str:
    """A Job document; `body` is its spec, indented two spaces."""
    return f"apiVersion: polycloud/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n{body}"


def dataset(name: str, where: str, size: int, residency: str | None = None) -> str:
    extra = f", residency: {residency}" if residency else ""
    return (
        f"apiVersion: polycloud/v1\nkind: Dataset\nmetadata: {{name: {name}}}\n"
        f"spec: {{cluster: {where}, sizeGB: {size}{extra}}}\n"
    )


def plan_of(*documents: str) -> dict[str, Any]:
    """Plan the documents and check the plan with the oracle (sound, optimal, priced) on the way."""
    catalog = load_catalog()
    docs = [d for text in documents for d in yaml.safe_load_all(text)]
    fleet = documents_to_fleet(docs, catalog)
    plan = plan_fleet(fleet, catalog).to_json()
    oracle = Oracle(fleet, catalog)
    assert oracle.check(plan) == []
    assert close(plan["totalUSD"], oracle.optimum().total)
    return plan


def placed(plan: dict[str, Any], workload: str) -> dict[str, Any]:
    found = [p for p in plan["placements"] if p["workload"] == workload]
    assert found, f"{workload} not placed: {plan['infeasible']}"
    placement: dict[str, Any] = found[0]
    return placement


def layout(plan: dict[str, Any], workload: str) -> list[tuple[str, str, int]]:
    """(cluster, role, replicas) of each assignment."""
    return [(a["cluster"], a["role"], a["replicas"]) for a in placed(plan, workload)["assignments"]]


# -- the example fleet: every pattern ---------------------------------------------------------------


@pytest.fixture(scope="module")
def example_plan() -> dict[str, Any]:
    catalog = load_catalog()
    fleet = load_fleet([EXAMPLES], catalog)
    plan = plan_fleet(fleet, catalog).to_json()
    assert Oracle(fleet, catalog).check(plan) == []
    return plan


def test_example_every_pattern_has_its_roles_and_replicas(example_plan: dict[str, Any]) -> None:
    roles = {
        p["workload"]: [(a["role"], a["replicas"]) for a in p["assignments"]]
        for p in example_plan["placements"]
    }
    assert roles["triage"] == [("active", 1)]
    assert roles["species"] == [("active", 2), ("active", 2)]
    assert roles["diagnosis"] == [("active", 2), ("standby", 1)]
    assert roles["species-batch"] == [("active", 1), ("burst", 0)]
    assert roles["train-diagnosis"] == [("active", 1)]
    assert roles["pretrain-botany"] == [("active", 2)]  # a job's replicas are its nodes
    assert example_plan["infeasible"] == []


def test_example_totals_add_up(example_plan: dict[str, Any]) -> None:
    for p in example_plan["placements"]:
        assert close(p["totalUSD"], p["computeUSD"] + p["egressUSD"])
        assert close(p["totalUSD"], sum(a["costUSD"] for a in p["assignments"]))
        assert p["explanation"]
    assert close(example_plan["totalUSD"], sum(p["totalUSD"] for p in example_plan["placements"]))
    assert close(example_plan["totalUSD"], 3277.6933)


def test_example_worked_figures(example_plan: dict[str, Any]) -> None:
    """The figures docs/cost-model.md works out by hand."""
    diagnosis = placed(example_plan, "diagnosis")
    assert close(diagnosis["computeUSD"], 2 * 0.62 * 730 + 1 * 0.62797 * 730)
    botany = placed(example_plan, "pretrain-botany")
    assert close(botany["computeUSD"], 2 * 48 * 13.2182) and botany["egressUSD"] == 0
    species = placed(example_plan, "species")
    assert close(species["egressUSD"], 50 * 0.09)  # field-observations leave aws-use1 for gcp-euw4


# -- prices -----------------------------------------------------------------------------------------


def test_spot_jobs_pay_spot_and_services_pay_on_demand(example_plan: dict[str, Any]) -> None:
    botany = placed(example_plan, "pretrain-botany")["assignments"][0]
    assert (botany["instanceType"], botany["hourlyUSD"], botany["spot"]) == ("p5.48xlarge", 13.2182, True)
    train = placed(example_plan, "train-diagnosis")["assignments"][0]
    assert train["spot"] is False and train["hourlyUSD"] == 9.80
    for name in ("diagnosis", "species", "species-batch", "triage"):
        assert not any(a["spot"] for a in placed(example_plan, name)["assignments"])


def test_spot_job_without_a_spot_price_pays_on_demand() -> None:
    plan = plan_of(
        cluster("onprem-fra"),
        job("tune", "  resources: {accelerator: T4}\n  hours: 10\n  spot: true\n"),
    )
    (a,) = placed(plan, "tune")["assignments"]
    assert (a["instanceType"], a["hourlyUSD"], a["spot"]) == ("t4-node", 0.62, False)
    assert close(placed(plan, "tune")["computeUSD"], 6.2)


def test_spot_job_picks_the_cheapest_spot_offering() -> None:
    """On spot the order of offerings can change: spot prices rank them, not on-demand ones."""
    etl = "  resources: {vcpus: 2, memoryGiB: 4}\n  hours: 100\n"
    on_demand = plan_of(cluster("aws-use1"), job("etl", etl))
    (a,) = placed(on_demand, "etl")["assignments"]
    assert (a["instanceType"], a["hourlyUSD"], a["spot"]) == ("m6i.large", 0.096, False)
    spot = plan_of(cluster("aws-use1"), job("etl", etl + "  spot: true\n"))
    (a,) = placed(spot, "etl")["assignments"]  # m6i.large has no spot price in the catalog
    assert (a["instanceType"], a["hourlyUSD"], a["spot"]) == ("g6f.large", 0.0484, True)


def test_gcp_offering_is_host_plus_attached_gpu() -> None:
    rows = list(
        csv.DictReader(importlib.resources.files("polycloud.catalog").joinpath("data/gcp_vms.csv").open())
    )
    host = next(r for r in rows if r["InstanceType"] == "n1-standard-4" and r["Region"] == "europe-west4")
    gpu = next(
        r
        for r in rows
        if r["AcceleratorName"] == "T4" and r["AcceleratorCount"] == "1" and r["Region"] == "europe-west4"
    )
    plan = plan_of(
        cluster("gcp-euw4"),
        service("vision", "  resources: {accelerator: t4, vcpus: 4, memoryGiB: 15}\n"),
    )
    (a,) = placed(plan, "vision")["assignments"]
    assert a["instanceType"] == "n1-standard-4-t4" and a["accelerator"] == "T4"
    assert close(a["hourlyUSD"], float(host["Price"]) + float(gpu["Price"]))
    assert close(placed(plan, "vision")["computeUSD"], (0.20917 + 0.3675) * 730)


# -- constraints that move a workload ----------------------------------------------------------------


def test_quota_forces_the_second_best_choice() -> None:
    """Both jobs want the on-prem DGX ($9.80/h) but its quota holds one: the longer run keeps it."""
    plan = plan_of(
        cluster("onprem-fra", "{A100: 8}"),
        cluster("gcp-euw4"),
        job("short", "  resources: {accelerator: A100, acceleratorCount: 8}\n  hours: 10\n"),
        job("long", "  resources: {accelerator: A100, acceleratorCount: 8}\n  hours: 100\n"),
    )
    assert layout(plan, "long") == [("onprem-fra", "active", 1)]
    assert layout(plan, "short") == [("gcp-euw4", "active", 1)]
    assert close(plan["totalUSD"], 100 * 9.80 + 10 * 19.4217)
    assert "quota is taken by long" in placed(plan, "short")["explanation"]


def test_jobs_count_every_node_against_the_quota() -> None:
    plan = plan_of(
        cluster("onprem-fra", "{A100: 8}"),
        cluster("gcp-euw4"),
        job("wide", "  resources: {accelerator: A100, acceleratorCount: 8}\n  nodes: 2\n  hours: 1\n"),
    )
    assert layout(plan, "wide") == [("gcp-euw4", "active", 2)]
    assert "needs 16 A100 but its quota is 8" in placed(plan, "wide")["explanation"]


def test_standby_holds_one_replica() -> None:
    """2 active replicas fit aws-use1's quota of 2, and the one warm standby replica gcp-euw4's quota of 1."""
    plan = plan_of(
        cluster("aws-use1", "{T4: 2}"),
        cluster("gcp-euw4", "{T4: 1}"),
        cluster("azure-weu", "{T4: 0}"),
        service("warm", "  resources: {accelerator: T4}\n  replicas: 2\n  pattern: active-passive\n"),
    )
    assert layout(plan, "warm") == [("aws-use1", "active", 2), ("gcp-euw4", "standby", 1)]
    assert close(placed(plan, "warm")["computeUSD"], 2 * 0.526 * 730 + 0.57667 * 730)


def test_burst_cluster_needs_no_quota() -> None:
    plan = plan_of(
        cluster("aws-use1"),
        cluster("gcp-euw4", "{T4: 0}"),
        cluster("azure-weu"),
        service(
            "peaky",
            "  resources: {accelerator: T4, vcpus: 4, memoryGiB: 15}\n  replicas: 3\n  pattern: burst\n"
            "  burstHoursPerMonth: 10\n",
        ),
    )
    assert layout(plan, "peaky") == [("aws-use1", "active", 3), ("gcp-euw4", "burst", 0)]
    assert close(placed(plan, "peaky")["computeUSD"], 3 * 0.526 * 730 + 3 * 0.57667 * 10)


def test_residency_forces_the_eu() -> None:
    reads = "  resources: {vcpus: 2, memoryGiB: 4}\n  reads: [{dataset: records, gbPerMonth: 0}]\n"
    free = plan_of(
        cluster("aws-use1"), cluster("gcp-euw4"), dataset("records", "gcp-euw4", 10), service("api", reads)
    )
    assert layout(free, "api") == [("aws-use1", "active", 1)]  # $0.096/h beats $0.10692/h
    plan = plan_of(
        cluster("aws-use1"),
        cluster("gcp-euw4"),
        dataset("records", "gcp-euw4", 10, "EU"),
        service("api", reads),
    )
    assert layout(plan, "api") == [("gcp-euw4", "active", 1)]
    assert "dataset records must stay in EU" in placed(plan, "api")["explanation"]


def test_residency_binds_the_standby_too() -> None:
    plan = plan_of(
        cluster("aws-use1"),
        cluster("aws-euw1"),
        cluster("gcp-euw4"),
        dataset("records", "gcp-euw4", 10, "EU"),
        service(
            "api",
            "  resources: {vcpus: 2, memoryGiB: 4}\n  pattern: active-passive\n"
            "  reads: [{dataset: records, gbPerMonth: 1}]\n",
        ),
    )
    assert {c for c, _, _ in layout(plan, "api")} == {"aws-euw1", "gcp-euw4"}


def test_latency_forces_a_nearer_cluster() -> None:
    def body(budget: str) -> str:
        return (
            "  resources: {vcpus: 2, memoryGiB: 4}\n"
            "  traffic: [{location: {lat: 48.86, lon: 2.35}, share: 1}]\n" + budget
        )

    far = plan_of(cluster("aws-use1"), cluster("azure-weu"), service("shop", body("")))
    assert layout(far, "shop") == [("aws-use1", "active", 1)]
    near = plan_of(
        cluster("aws-use1"), cluster("azure-weu"), service("shop", body("  latency: {maxRttMs: 30}\n"))
    )
    assert layout(near, "shop") == [("azure-weu", "active", 1)]
    assert "exceeds maxRttMs 30" in placed(near, "shop")["explanation"]


def test_active_active_covers_each_source_with_its_nearest_cluster() -> None:
    traffic = "  traffic: [{region: aws/us-east-1, share: 0.5}, {region: azure/westeurope, share: 0.5}]\n"
    plan = plan_of(
        cluster("aws-use1"),
        cluster("gcp-euw4"),
        cluster("azure-weu"),
        service(
            "global",
            "  resources: {vcpus: 2, memoryGiB: 4}\n  pattern: active-active\n"
            + traffic
            + "  latency: {maxRttMs: 20}\n",
        ),
    )
    clusters = {c for c, _, _ in layout(plan, "global")}
    assert "aws-use1" in clusters and clusters & {"gcp-euw4", "azure-weu"}


def test_data_gravity_pulls_a_service_to_its_data() -> None:
    """aws-use1 computes $13.87/month cheaper; reading 500 GB/month from azure costs $43.75 there."""

    def fleet(gb: int) -> dict[str, Any]:
        return plan_of(
            cluster("aws-use1"),
            cluster("azure-weu"),
            dataset("events", "azure-weu", 100),
            service(
                "stats",
                f"  resources: {{vcpus: 2, memoryGiB: 4}}\n"
                f"  reads: [{{dataset: events, gbPerMonth: {gb}}}]\n",
            ),
        )

    light = fleet(100)  # egress 100 x 0.0875 = 8.75 < 13.87: compute price wins
    assert layout(light, "stats") == [("aws-use1", "active", 1)]
    assert close(placed(light, "stats")["egressUSD"], 8.75)
    heavy = fleet(500)
    assert layout(heavy, "stats") == [("azure-weu", "active", 1)]
    assert placed(heavy, "stats")["egressUSD"] == 0


def test_job_moves_the_whole_dataset_once() -> None:
    plan = plan_of(
        cluster("aws-use1", "{A100: 0}"),
        cluster("gcp-euw4"),
        dataset("corpus", "aws-use1", 2500),
        job(
            "fit",
            "  resources: {accelerator: A100, acceleratorCount: 8}\n  hours: 1\n"
            "  reads: [{dataset: corpus}]\n",
        ),
    )
    p = placed(plan, "fit")
    assert layout(plan, "fit") == [("gcp-euw4", "active", 1)]
    assert close(p["egressUSD"], 2500 * 0.09) and close(p["computeUSD"], 19.4217)


def test_same_provider_transfer_uses_the_inter_region_price() -> None:
    plan = plan_of(
        cluster("aws-euw1"),
        dataset("logs", "aws-euw1", 1),
        cluster("aws-use1"),
        service(
            "report",
            "  resources: {vcpus: 2, memoryGiB: 4}\n  placement: {clusters: [aws-use1]}\n"
            "  reads: [{dataset: logs, gbPerMonth: 1000}]\n",
        ),
    )
    assert close(placed(plan, "report")["egressUSD"], 1000 * 0.02)


# -- what cannot be placed ---------------------------------------------------------------------------


def test_infeasible_workload_is_reported_and_the_rest_planned() -> None:
    plan = plan_of(
        cluster("onprem-fra"),
        cluster("azure-weu"),
        job(
            "huge",
            "  resources: {accelerator: H100, acceleratorCount: 8}\n  hours: 1\n"
            "  placement: {providers: [onprem]}\n",
        ),
        service(
            "duo",
            "  resources: {vcpus: 2, memoryGiB: 4}\n  pattern: active-active\n"
            "  placement: {providers: [azure]}\n",
        ),
        service("ok", "  resources: {vcpus: 2, memoryGiB: 4}\n"),
    )
    assert [p["workload"] for p in plan["placements"]] == ["ok"]
    reasons = {i["workload"]: i["reasons"] for i in plan["infeasible"]}
    assert reasons["huge"][0] == "no cluster can run it"
    assert "onprem-fra: no offering with H100 x8" in reasons["huge"]
    assert "azure-weu: provider azure not in placement.providers" in reasons["huge"]
    assert reasons["duo"][0].startswith("active-active needs two clusters of different providers")


def test_quota_contention_places_as_many_as_possible() -> None:
    """Two of three fit: the cheapest two (a: $9.80, c: $1.24); b is reported (fails with bug 1 below)."""
    plan = plan_of(
        cluster("onprem-fra", "{A100: 8}"),
        job("a", "  resources: {accelerator: A100, acceleratorCount: 8}\n  hours: 1\n"),
        job("b", "  resources: {accelerator: A100, acceleratorCount: 8}\n  hours: 2\n"),
        job("c", "  resources: {accelerator: T4}\n  hours: 2\n"),
    )
    assert [p["workload"] for p in plan["placements"]] == ["a", "c"]
    assert plan["infeasible"][0]["workload"] == "b"
    assert plan["infeasible"][0]["reasons"][0] == "quota contention: a100 in onprem-fra is taken by a"


# -- planner bugs found by the property tests: these fail until src/ is fixed ------------------------


def test_contention_keeps_the_cheaper_of_two_rivals() -> None:
    """One T4 of quota, two takers: place the one that costs less ($0.526 job, not the $383.98 service).

    Bug: `solving._solve_coupled` reads the solver's values by position in `columns`, but with slack
    variables (`_program(..., with_slack=True)`) the variables are interleaved `u0, x.., u1, x..`, so a
    slack set to 1 is read as "choice taken": the wrong workloads are placed (even broken patterns).
    """
    plan = plan_of(
        cluster("aws-use1", "{T4: 1}"),
        service("w0", "  resources: {accelerator: T4}\n"),
        job("w1", "  resources: {accelerator: T4}\n  hours: 1\n"),
    )
    assert [p["workload"] for p in plan["placements"]] == ["w1"]
    assert close(plan["totalUSD"], 0.526)


def test_pattern_failure_is_not_blamed_on_quota_contention() -> None:
    """`peaky` can never be placed (burst needs a second cluster with a T4), whatever others do.

    Bug: a workload left out of a coupled component is always reported as "quota contention ... taken
    by other workloads" (`solving._contention`), even when nobody holds the quota and the real reason is
    its pattern.
    """
    plan = plan_of(
        cluster("azure-weu", "{T4: 3}"),
        cluster("onprem-fra").replace("    - {name: t4-node", "    # - {name: t4-node"),
        service("peaky", "  resources: {accelerator: T4}\n  replicas: 2\n  pattern: burst\n"),
        service("pair", "  resources: {accelerator: T4}\n  replicas: 3\n  pattern: active-active\n"),
    )
    assert plan["placements"] == []
    reasons = {i["workload"]: i["reasons"][0] for i in plan["infeasible"]}
    assert reasons["peaky"] == "burst needs a burst cluster other than the primary"
    assert "quota contention" not in reasons["pair"]

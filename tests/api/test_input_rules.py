"""What the API refuses in requests: lax booleans, unbounded numbers, bad secret and project names; and
what a project's preview must not show (other projects' spend in its baseline)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CLUSTER, Governed, service


@pytest.mark.parametrize("lax", [0, 1, "yes", "true", "", None])
def test_dry_run_takes_true_or_false_only(governed: Governed, lax: Any) -> None:
    body = {"documents": governed.documents(CLUSTER, service("alpha-svc", "alpha", 3)), "dryRun": lax}
    before = governed.store.current()
    answer = governed.client.post("/api/v1/apply", json=body, headers=governed.token("admin"))
    assert answer.status_code == 400, answer.text
    assert answer.json()["issues"] == [f"body.dryRun: must be true or false, not {lax!r}"]
    assert governed.store.current() == before  # a lax "no" never became a real apply


def test_spec_numbers_and_booleans_are_checked_in_api_documents_too(governed: Governed) -> None:
    documents = governed.documents(CLUSTER, service("alpha-svc", "alpha"))
    documents[1]["spec"]["replicas"] = 99999999999999999999
    job = {
        "apiVersion": "polycloud/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {"hours": 1, "spot": 0},
    }
    body = {"documents": [*documents, job], "dryRun": True}
    answer = governed.client.post("/api/v1/apply", json=body, headers=governed.token("admin"))
    assert answer.status_code == 422, answer.text
    issues = answer.json()["issues"]
    assert any("spec.replicas: Input should be less than or equal to 10000" in i for i in issues)
    assert any("spec.spot: must be true or false, not 0" in i for i in issues)


@pytest.mark.parametrize("name", ["DB_PASSWORD", "-lead", "trail-", "a" * 254, "sp ace", "semi;colon"])
def test_bad_secret_names_are_refused_with_400(governed: Governed, name: str) -> None:
    answer = governed.client.put(
        f"/api/v1/secrets/{name}", json={"value": "v"}, headers=governed.token("admin")
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["issues"][0].startswith("path.name: must be lower-case letters, digits, '-', '.'")


@pytest.mark.parametrize("project", ["Risk", "risk_team", "r" * 64, "-risk", "a.b"])
def test_bad_project_names_are_refused_with_400(governed: Governed, project: str) -> None:
    admin = governed.token("admin")
    secret = governed.client.put(f"/api/v1/secrets/db?project={project}", json={"value": "v"}, headers=admin)
    assert secret.status_code == 400, secret.text
    token = governed.client.post("/api/v1/tokens", json={"role": "viewer", "project": project}, headers=admin)
    assert token.status_code == 400, token.text
    rule = "a DNS-1123 label (lower-case letters, digits and '-', at most 63)"
    assert f"body.project: must be {rule}, not {project!r}" in token.text
    documents = governed.documents(CLUSTER, service("svc", "alpha"))
    documents[1]["metadata"]["labels"]["project"] = project
    body = {"documents": documents, "dryRun": True}
    labelled = governed.client.post("/api/v1/apply", json=body, headers=admin)
    assert labelled.status_code == 422, labelled.text
    assert "metadata.labels: Value error" not in labelled.text  # the message is ours, not pydantic's
    assert f"labels.project {project!r} must be a DNS-1123 label" in labelled.text


def test_good_names_still_work(governed: Governed) -> None:
    admin = governed.token("admin")
    answer = governed.client.put(
        "/api/v1/secrets/db.pass_word-2?project=risk", json={"value": "v"}, headers=admin
    )
    assert answer.status_code == 200, answer.text
    assert (
        governed.client.delete("/api/v1/secrets/db.pass_word-2?project=risk", headers=admin).status_code
        == 200
    )


def test_a_projects_preview_baseline_counts_its_own_workloads_only(governed: Governed) -> None:
    alpha = governed.token("deployer", "alpha")
    preview = governed.apply(alpha, service("alpha-svc", "alpha", 3), dry_run=True)
    assert preview.status_code == 200, preview.text
    plan = preview.json()["plan"]
    assert [p["workload"] for p in plan["placements"]] == ["alpha-svc"]
    # One cluster, one provider: the naive plan is the plan, for alpha-svc alone (beta-svc costs too).
    assert plan["baselineUSD"] == plan["totalUSD"] > 0
    assert plan["baselineProvider"] == "acme"
    fleet = governed.apply(
        governed.token("admin"),
        CLUSTER,
        service("alpha-svc", "alpha", 3),
        service("beta-svc", "beta"),
        dry_run=True,
    )
    assert fleet.json()["plan"]["baselineUSD"] > plan["baselineUSD"]

"""Project scoping and the audit trail through the API: what each token sees, changes and leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .conftest import CLUSTER, Governed, service


def audit_log(gov: Governed) -> list[dict[str, Any]]:
    answer = gov.client.get("/api/v1/audit?limit=1000", headers=gov.token("admin"))
    assert answer.status_code == 200, answer.text
    return list(reversed(answer.json()))


def test_a_project_token_sees_only_its_project(governed: Governed) -> None:
    alpha = governed.token("viewer", "alpha")
    names = [s["name"] for s in governed.client.get("/api/v1/status", headers=alpha).json()["services"]]
    assert names == ["alpha-svc"]
    every = governed.client.get("/api/v1/status", headers=governed.token("viewer")).json()["services"]
    assert sorted(s["name"] for s in every) == ["alpha-svc", "beta-svc"]

    assert governed.client.get("/api/v1/workloads/alpha-svc/history", headers=alpha).status_code == 200
    other = governed.client.get("/api/v1/workloads/beta-svc/history", headers=alpha)
    assert other.status_code == 403 and "not in project alpha" in other.json()["error"]
    missing = governed.client.get("/api/v1/workloads/beta-sv/history", headers=alpha)
    assert missing.status_code == 404 and "beta-svc" not in missing.json()["error"]


def test_events_are_filtered_to_the_project(governed: Governed) -> None:
    from polycloud.state import EventInput

    governed.store.add_events(
        [
            EventInput(level="info", reason="ReplicaReady", message="a", workload="alpha-svc"),
            EventInput(level="info", reason="ReplicaReady", message="b", workload="beta-svc"),
            EventInput(level="info", reason="ClusterUp", message="c", cluster="west"),
        ]
    )
    alpha = governed.client.get("/api/v1/events", headers=governed.token("viewer", "alpha")).json()
    assert [e["message"] for e in alpha] == ["a"]
    assert len(governed.client.get("/api/v1/events", headers=governed.token("viewer")).json()) == 3


def test_a_project_apply_changes_and_prunes_only_its_project(governed: Governed) -> None:
    alpha = governed.token("deployer", "alpha")
    changed = governed.apply(alpha, service("alpha-svc", "alpha", 2), service("alpha-two", "alpha"))
    assert changed.status_code == 200, changed.text
    assert {c["workload"]: c["action"] for c in changed.json()["changes"]} == {
        "alpha-svc": "~",
        "alpha-two": "+",
    }
    assert [p["workload"] for p in changed.json()["plan"]["placements"]] == ["alpha-svc", "alpha-two"]

    pruned = governed.apply(alpha, service("alpha-two", "alpha"))
    assert {c["workload"]: c["action"] for c in pruned.json()["changes"]} == {
        "alpha-two": "=",
        "alpha-svc": "-",
    }
    assert sorted(w.name for w in governed.store.current()) == ["alpha-two", "beta-svc"]
    assert [r.number for r in governed.store.history("beta-svc")] == [1]


def test_a_project_apply_outside_its_project_is_refused_whole(governed: Governed) -> None:
    alpha = governed.token("deployer", "alpha")
    before = governed.store.current()
    other = governed.apply(alpha, service("alpha-svc", "alpha", 3), service("beta-svc", "beta", 3))
    assert other.status_code == 403 and "document[1] Service 'beta-svc'" in other.json()["error"]
    unlabelled = governed.apply(alpha, service("loose", None))
    assert unlabelled.status_code == 403 and "labelled project: alpha" in unlabelled.json()["error"]
    hijack = governed.apply(alpha, service("beta-svc", "alpha"))
    assert hijack.status_code == 403 and "outside project alpha" in hijack.json()["error"]
    bigger = {**CLUSTER, "spec": {**CLUSTER["spec"], "region": "porto"}}
    shared = governed.apply(alpha, bigger, service("alpha-svc", "alpha"))
    assert shared.status_code == 403 and "Cluster west is shared" in shared.json()["error"]
    assert governed.store.current() == before


def test_rollback_of_another_projects_workload_is_refused(governed: Governed) -> None:
    admin = governed.token("deployer")
    assert governed.apply(
        admin, CLUSTER, service("alpha-svc", "alpha", 2), service("beta-svc", "beta")
    ).is_success
    beta = governed.token("deployer", "beta")
    refused = governed.client.post("/api/v1/workloads/alpha-svc/rollback", json={}, headers=beta)
    assert refused.status_code == 403
    done = governed.client.post(
        "/api/v1/workloads/alpha-svc/rollback", json={}, headers=governed.token("deployer", "alpha")
    )
    assert done.status_code == 200 and done.json()["revision"] == "r3"


def test_tokens_are_created_listed_and_revoked_within_the_callers_rights(governed: Governed) -> None:
    admin = governed.token("admin")
    made = governed.client.post(
        "/api/v1/tokens", json={"role": "deployer", "project": "alpha", "expires": "30d"}, headers=admin
    )
    assert made.status_code == 201, made.text
    secret, created = made.json()["token"], made.json()
    assert secret.startswith("pc_") and created["state"] == "active" and created["name"] == "deployer-alpha"
    listed = governed.client.get("/api/v1/tokens", headers=admin).json()
    assert all("token" not in t and secret not in str(t) for t in listed)
    mine = {"authorization": f"Bearer {secret}"}
    assert governed.client.get("/api/v1/status", headers=mine).status_code == 200

    alpha_admin = governed.token("admin", "alpha")
    assert {t["project"] for t in governed.client.get("/api/v1/tokens", headers=alpha_admin).json()} == {
        "alpha"
    }
    wider = governed.client.post("/api/v1/tokens", json={"role": "viewer"}, headers=alpha_admin)
    assert wider.status_code == 201 and wider.json()["project"] == "alpha"

    revoked = governed.client.delete(f"/api/v1/tokens/{created['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert governed.client.get("/api/v1/status", headers=mine).status_code == 401


def test_bad_token_requests_get_reasons(governed: Governed) -> None:
    admin = governed.token("admin")
    cases = [
        ({"role": "root"}, 400, "role"),
        ({"role": "viewer", "expires": "soon"}, 400, "30d"),
        ({"role": "viewer", "expires": "99999w"}, 400, "between"),
        ({"role": "viewer", "project": "Not_A_Label"}, 400, "DNS-1123"),
        ({"role": "viewer", "name": "has space"}, 400, "token name"),
    ]
    for body, status, words in cases:
        answer = governed.client.post("/api/v1/tokens", json=body, headers=admin)
        assert answer.status_code == status and words in answer.text, (body, answer.text)
    assert governed.client.delete("/api/v1/tokens/999", headers=admin).status_code == 404


def test_the_last_fleet_wide_admin_token_cannot_be_revoked(governed: Governed) -> None:
    for token in governed.store.tokens():
        if token.role == "admin":
            governed.store.revoke_token(token.id)
    secret, last = governed.store.create_token(name="last", role="admin", project=None, expires_at=None)
    headers = {"authorization": f"Bearer {secret}"}
    refused = governed.client.delete(f"/api/v1/tokens/{last.id}", headers=headers)
    assert refused.status_code == 409 and "last lasting fleet-wide admin" in refused.json()["error"]


def test_an_admin_token_about_to_expire_does_not_stand_in_for_the_last_lasting_one(
    governed: Governed,
) -> None:
    for token in governed.store.tokens():
        if token.role == "admin":
            governed.store.revoke_token(token.id)
    secret, last = governed.store.create_token(name="last", role="admin", project=None, expires_at=None)
    soon = datetime.now(UTC) + timedelta(minutes=1)
    governed.store.create_token(name="brief", role="admin", project=None, expires_at=soon)
    headers = {"authorization": f"Bearer {secret}"}

    refused = governed.client.delete(f"/api/v1/tokens/{last.id}", headers=headers)

    assert refused.status_code == 409 and "last lasting fleet-wide admin" in refused.json()["error"]
    later = datetime.now(UTC) + timedelta(days=30)
    governed.store.create_token(name="lasting", role="admin", project=None, expires_at=later)
    assert governed.client.delete(f"/api/v1/tokens/{last.id}", headers=headers).status_code == 200


def test_mutations_and_refusals_are_in_the_audit_trail(governed: Governed) -> None:
    governed.client.get("/api/v1/status")
    governed.client.post("/api/v1/shutdown", headers=governed.token("admin", "alpha"))
    governed.apply(governed.token("deployer", "alpha"), service("alpha-svc", "alpha", 2))
    governed.client.post(
        "/api/v1/faults", json={"cluster": "west", "kind": "kill"}, headers=governed.token("deployer")
    )
    entries = audit_log(governed)

    seen = [(e["action"], e["outcome"], e["target"]) for e in entries]
    assert seen[0] == ("apply", "ok", "fleet")
    assert ("auth.failed", "denied", "GET /api/v1/status") in seen
    assert ("auth.forbidden", "denied", "POST /api/v1/shutdown") in seen
    refused = next(e for e in entries if e["action"] == "auth.forbidden")
    assert (
        refused["actor"].startswith("admin-alpha#")
        and "stop the control plane" in refused["detail"]["reason"]
    )
    assert refused["detail"]["project"] == "alpha" and governed.shutdowns == 0
    assert ("apply", "ok", "alpha") in seen and ("fault.inject", "ok", "west") in seen
    applied = next(e for e in entries if e["target"] == "alpha")
    assert applied["actor"].startswith("deployer-alpha#") and applied["revision"] == 2
    assert applied["detail"]["changes"] == {"alpha-svc": "~r2"}
    verdict = governed.client.get("/api/v1/audit/verify", headers=governed.token("admin")).json()
    assert verdict["intact"] and verdict["entries"] == len(entries) and verdict["broken"] is None


def test_failed_changes_are_audited_as_failed(governed: Governed) -> None:
    deployer = governed.token("deployer")
    bad = governed.client.post("/api/v1/workloads/nope/rollback", json={}, headers=deployer)
    assert bad.status_code == 404
    entry = audit_log(governed)[-1]
    assert (entry["action"], entry["outcome"], entry["target"]) == ("rollback", "failed", "nope")
    assert "nope" in entry["detail"]["error"]


def test_verify_reports_tampering(governed: Governed) -> None:
    from sqlalchemy import text

    governed.client.get("/api/v1/status")
    governed.client.get("/api/v1/status")
    with governed.store.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    verdict = governed.client.get("/api/v1/audit/verify", headers=governed.token("admin")).json()
    assert not verdict["intact"] and verdict["broken"]["kind"] == "deleted" and verdict["broken"]["seq"] == 2


def test_policy_refusals_are_audited_as_denied(governed: Governed) -> None:
    policy = {
        "apiVersion": "polycloud/v1",
        "kind": "Policy",
        "metadata": {"name": "labels"},
        "spec": {"requiredLabels": ["team"]},
    }
    deployer = governed.token("deployer")
    for dry_run in (True, False):
        refused = governed.apply(deployer, CLUSTER, policy, service("alpha-svc", "alpha"), dry_run=dry_run)
        assert refused.status_code == 422, refused.text
    entries = audit_log(governed)[-2:]
    assert [(e["action"], e["outcome"], e["detail"].get("dryRun")) for e in entries] == [
        ("apply", "denied", True),
        ("apply", "denied", None),
    ]
    assert entries[1]["detail"]["violations"][0] == {
        "policy": "labels",
        "rule": "requiredLabels[0]",
        "kind": "Service",
        "document": "alpha-svc",
    }

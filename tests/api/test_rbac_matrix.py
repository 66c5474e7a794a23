"""The whole RBAC matrix: every operation of the OpenAPI document × every role × every project scope.

The operations come from the app's own OpenAPI document, so a new endpoint without a rule in `RULES`
fails `test_every_operation_has_a_rule`. A rule says the least role an operation needs and its scope:
- "public":  no token needed;
- "any":     any project token may call it (what it answers is filtered to the token's project);
- "project": it acts on something of project alpha, so tokens of alpha or fleet-wide ones may call it;
- "fleet":   it concerns every project (clusters, the control plane, the audit trail): fleet-wide only.
Allowed calls must not answer 401/403 (they may answer 404/409/503 when the resource is missing);
refused calls must answer 403, and calls without a valid token 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import CLUSTER, Governed, service

RANK = {"viewer": 0, "deployer": 1, "admin": 2}
ROLES = tuple(RANK)
SCOPES = (None, "alpha", "beta")
"""Fleet-wide, the target's own project, another project."""

Call = tuple[str, dict[str, Any] | None]
"""(URL with query, JSON body or None)."""


@dataclass(frozen=True)
class Rule:
    role: str
    scope: str
    call: Callable[[Governed], Call]


def _static(url: str, body: dict[str, Any] | None = None) -> Callable[[Governed], Call]:
    return lambda _: (url, body)


def _documents(dry_run: bool | None) -> Callable[[Governed], Call]:
    def call(gov: Governed) -> Call:
        body: dict[str, Any] = {"documents": gov.documents(CLUSTER, service("alpha-svc", "alpha", 2))}
        if dry_run is not None:
            body["dryRun"] = dry_run
        return ("/api/v1/apply" if dry_run is not None else "/api/v1/plan", body)

    return call


def _alpha_token(gov: Governed) -> Call:
    _, record = gov.store.create_token(name="spare", role="viewer", project="alpha", expires_at=None)
    return (f"/api/v1/tokens/{record.id}", None)


def _alpha_key(gov: Governed) -> Call:
    _, record = gov.store.create_inference_key(
        service="alpha-svc", name="k", rps=1.0, burst=1, monthly_quota=None
    )
    return (f"/api/v1/keys/{record.id}", None)


def _login(gov: Governed) -> Call:
    secret, _ = gov.store.create_token(name="typed", role="viewer", project=None, expires_at=None)
    return ("/api/v1/session", {"token": secret})


def _closed_stream(gov: Governed) -> Call:
    """The stream of a closing feed answers at once (503) instead of streaming forever."""
    gov.client.app.state.feed.close()  # type: ignore[attr-defined]
    return ("/api/v1/dashboard/stream", None)


RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/v1/health"): Rule("viewer", "public", _static("/api/v1/health")),
    ("GET", "/api/v1/status"): Rule("viewer", "any", _static("/api/v1/status")),
    ("POST", "/api/v1/plan"): Rule("viewer", "project", _documents(None)),
    ("POST", "/api/v1/apply"): Rule("deployer", "project", _documents(True)),
    ("GET", "/api/v1/workloads/{name}/history"): Rule(
        "viewer", "project", _static("/api/v1/workloads/alpha-svc/history")
    ),
    ("POST", "/api/v1/workloads/{name}/rollback"): Rule(
        "deployer", "project", _static("/api/v1/workloads/alpha-svc/rollback", {"to": 1})
    ),
    ("GET", "/api/v1/events"): Rule("viewer", "project", _static("/api/v1/events?workload=alpha-svc")),
    ("POST", "/api/v1/faults"): Rule(
        "deployer", "fleet", _static("/api/v1/faults", {"cluster": "west", "kind": "kill"})
    ),
    ("DELETE", "/api/v1/faults/{cluster}"): Rule("deployer", "fleet", _static("/api/v1/faults/west")),
    ("POST", "/api/v1/shutdown"): Rule("admin", "fleet", _static("/api/v1/shutdown")),
    ("GET", "/api/v1/tokens"): Rule("admin", "any", _static("/api/v1/tokens")),
    ("POST", "/api/v1/tokens"): Rule(
        "admin", "project", _static("/api/v1/tokens", {"role": "viewer", "project": "alpha"})
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): Rule("admin", "project", _alpha_token),
    ("GET", "/api/v1/audit"): Rule("admin", "fleet", _static("/api/v1/audit")),
    ("GET", "/api/v1/audit/verify"): Rule("admin", "fleet", _static("/api/v1/audit/verify")),
    ("GET", "/api/v1/rollouts"): Rule("viewer", "any", _static("/api/v1/rollouts")),
    ("GET", "/api/v1/rollouts/{service}"): Rule("viewer", "project", _static("/api/v1/rollouts/alpha-svc")),
    ("POST", "/api/v1/rollouts/{service}/{action}"): Rule(
        "deployer", "project", _static("/api/v1/rollouts/alpha-svc/pause")
    ),
    ("GET", "/api/v1/secrets"): Rule("viewer", "any", _static("/api/v1/secrets")),
    ("PUT", "/api/v1/secrets/{name}"): Rule(
        "deployer", "project", _static("/api/v1/secrets/db?project=alpha", {"value": "s3cret"})
    ),
    ("DELETE", "/api/v1/secrets/{name}"): Rule(
        "deployer", "project", _static("/api/v1/secrets/db?project=alpha")
    ),
    ("POST", "/api/v1/secrets/rotate-master"): Rule(
        "admin", "fleet", _static("/api/v1/secrets/rotate-master")
    ),
    ("POST", "/api/v1/certificates"): Rule("admin", "fleet", _static("/api/v1/certificates")),
    ("POST", "/api/v1/certificates/rotate"): Rule("admin", "fleet", _static("/api/v1/certificates/rotate")),
    ("POST", "/api/v1/keys"): Rule("deployer", "project", _static("/api/v1/keys", {"service": "alpha-svc"})),
    ("GET", "/api/v1/keys"): Rule("viewer", "any", _static("/api/v1/keys")),
    ("DELETE", "/api/v1/keys/{key_id}"): Rule("deployer", "project", _alpha_key),
    ("GET", "/api/v1/flags"): Rule("viewer", "any", _static("/api/v1/flags")),
    ("GET", "/api/v1/flags/{name}/history"): Rule("viewer", "any", _static("/api/v1/flags/f/history")),
    ("POST", "/api/v1/flags/{name}/state"): Rule(
        "deployer", "fleet", _static("/api/v1/flags/f/state", {"state": "DISABLED"})
    ),
    ("POST", "/api/v1/flags/{name}/rollback"): Rule(
        "deployer", "fleet", _static("/api/v1/flags/f/rollback", {})
    ),
    ("GET", "/api/v1/jobs"): Rule("viewer", "any", _static("/api/v1/jobs")),
    ("GET", "/api/v1/lineage"): Rule("viewer", "any", _static("/api/v1/lineage")),
    ("GET", "/api/v1/lineage/{name}"): Rule("viewer", "any", _static("/api/v1/lineage/alpha-svc")),
    ("GET", "/api/v1/cost"): Rule("viewer", "any", _static("/api/v1/cost")),
    ("GET", "/api/v1/cost/export"): Rule("viewer", "any", _static("/api/v1/cost/export")),
    ("GET", "/api/v1/cost/budgets"): Rule("viewer", "any", _static("/api/v1/cost/budgets")),
    ("GET", "/api/v1/advice"): Rule("viewer", "any", _static("/api/v1/advice")),
    ("GET", "/api/v1/slo"): Rule("viewer", "any", _static("/api/v1/slo")),
    ("GET", "/api/v1/incidents"): Rule("viewer", "any", _static("/api/v1/incidents?state=open")),
    ("GET", "/api/v1/anomalies"): Rule("viewer", "any", _static("/api/v1/anomalies?minutes=5")),
    ("GET", "/api/v1/jobs/{name}/logs"): Rule("viewer", "project", _static("/api/v1/jobs/alpha-svc/logs")),
    ("POST", "/api/v1/jobs/{name}/cancel"): Rule(
        "deployer", "project", _static("/api/v1/jobs/alpha-svc/cancel")
    ),
    ("POST", "/api/v1/jobs/{name}/preempt"): Rule(
        "deployer", "project", _static("/api/v1/jobs/alpha-svc/preempt", {"graceSeconds": 0})
    ),
    ("POST", "/api/v1/session/codes"): Rule("viewer", "any", _static("/api/v1/session/codes")),
    ("POST", "/api/v1/session"): Rule("viewer", "public", _login),
    ("GET", "/api/v1/session"): Rule("viewer", "any", _static("/api/v1/session")),
    ("DELETE", "/api/v1/session"): Rule("viewer", "any", _static("/api/v1/session")),
    ("GET", "/api/v1/dashboard/overview"): Rule("viewer", "any", _static("/api/v1/dashboard/overview")),
    ("GET", "/api/v1/dashboard/series"): Rule("viewer", "any", _static("/api/v1/dashboard/series")),
    ("GET", "/api/v1/dashboard/stream"): Rule("viewer", "any", _closed_stream),
    ("GET", "/api/v1/dashboard/spend"): Rule("viewer", "any", _static("/api/v1/dashboard/spend")),
    ("GET", "/api/v1/dashboard/services/{name}/explain"): Rule(
        "viewer", "project", _static("/api/v1/dashboard/services/alpha-svc/explain")
    ),
    ("GET", "/api/v1/auth/oidc"): Rule("viewer", "public", _static("/api/v1/auth/oidc")),
    ("GET", "/api/v1/auth/oidc/login"): Rule("viewer", "public", _static("/api/v1/auth/oidc/login")),
    ("GET", "/api/v1/auth/oidc/callback"): Rule(
        "viewer", "public", _static("/api/v1/auth/oidc/callback?code=c&state=s")
    ),
    ("GET", "/.well-known/openid-configuration"): Rule(
        "viewer", "public", _static("/.well-known/openid-configuration")
    ),
    ("GET", "/.well-known/jwks.json"): Rule("viewer", "public", _static("/.well-known/jwks.json")),
    ("POST", "/api/v1/identity/rotate"): Rule("admin", "fleet", _static("/api/v1/identity/rotate")),
    ("POST", "/api/v1/dashboard/drills"): Rule(
        "deployer", "fleet", _static("/api/v1/dashboard/drills", {"cluster": "west", "seconds": 2})
    ),
}


def _case(operation: tuple[str, str]) -> Any:
    return pytest.param(operation, id=f"{operation[0]} {operation[1]}")


def operations(gov: Governed) -> set[tuple[str, str]]:
    paths = gov.client.get("/api/v1/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def allowed(rule: Rule, role: str, project: str | None) -> bool:
    if RANK[role] < RANK[rule.role]:
        return False
    if rule.scope == "fleet":
        return project is None
    if rule.scope == "project":
        return project in (None, "alpha")
    return True


def test_every_operation_has_a_rule(governed: Governed) -> None:
    missing = sorted(operations(governed) - set(RULES))
    assert not missing, f"add an RBAC rule to tests/api/test_rbac_matrix.py RULES for {missing}"
    assert not sorted(set(RULES) - operations(governed)), "RULES names operations the API no longer has"


@pytest.mark.parametrize("operation", [_case(op) for op in sorted(RULES)])
def test_matrix(governed: Governed, operation: tuple[str, str]) -> None:
    rule = RULES[operation]
    method = operation[0]
    wrong: list[str] = []
    for headers, label in ({}, "no token"), ({"authorization": "Bearer pc_wrong"}, "bad token"):
        url, body = rule.call(governed)
        status = governed.client.request(method, url, json=body, headers=headers).status_code
        if (status == 401) == (rule.scope == "public"):
            wrong.append(f"{label}: {status}")
    for role in ROLES:
        for project in SCOPES:
            url, body = rule.call(governed)
            answer = governed.client.request(method, url, json=body, headers=governed.token(role, project))
            want = allowed(rule, role, project)
            if (answer.status_code in (401, 403)) == want or (not want and answer.status_code != 403):
                wrong.append(f"{role} of {project or 'the fleet'}: {answer.status_code} {answer.text[:120]}")
    assert not wrong, f"{method} {operation[1]} ({rule.role}, {rule.scope}):\n  " + "\n  ".join(wrong)

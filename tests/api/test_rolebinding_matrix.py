"""The RBAC matrix again, for people: every operation of the OpenAPI document × every role × every
project scope, each granted by a RoleBinding to a person whose ID token the API checks.

The rules are the token matrix's (`test_rbac_matrix.RULES`): a person bound to a role in a scope may do
exactly what a token of that role and scope may. A person no binding names gets 403 on every operation
that needs a caller, and a token the provider never signed gets 401.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CLUSTER, Governed, service
from .issuer import LocalIssuer
from .test_oidc_tokens import bearer, binding, use_provider
from .test_rbac_matrix import RANK, RULES, SCOPES, _case, allowed, operations

ROLES = tuple(RANK)


def person(role: str, project: str | None) -> str:
    return f"{role}-{project or 'fleet'}@example.com"


@pytest.fixture
def people(governed: Governed) -> Any:
    issuer = LocalIssuer()
    use_provider(governed, issuer, cooldown_s=3600)
    bindings = [
        binding(f"{role}-{project or 'fleet'}", role, project, group=f"g-{role}-{project or 'fleet'}")
        for role in ROLES
        for project in SCOPES
    ]
    docs = (CLUSTER, service("alpha-svc", "alpha"), service("beta-svc", "beta"), *bindings)
    applied = governed.apply(governed.token("admin"), *docs)
    assert applied.status_code == 200, applied.text
    stranger = LocalIssuer()  # a provider polycloud was not told about
    yield governed, issuer, stranger
    issuer.close()
    stranger.close()


People = tuple[Governed, LocalIssuer, LocalIssuer]


def test_every_operation_is_in_the_matrix(people: People) -> None:
    assert operations(people[0]) == set(RULES)


@pytest.mark.parametrize("operation", [_case(op) for op in sorted(RULES)])
def test_matrix(people: People, operation: tuple[str, str]) -> None:
    gov, issuer, stranger = people
    rule, method = RULES[operation], operation[0]
    wrong: list[str] = []
    nobody = bearer(issuer.mint("nobody@example.com", ["no-such-group"]))
    forged = bearer(stranger.mint("admin-fleet@example.com", ["g-admin-fleet"]))
    for headers, label, refusal in ((nobody, "no binding", 403), (forged, "foreign token", 401)):
        url, body = rule.call(gov)
        status = gov.client.request(
            method, url, json=body, headers=headers, follow_redirects=False
        ).status_code
        if (status == refusal) == (rule.scope == "public"):
            wrong.append(f"{label}: {status}")
    for role in ROLES:
        for project in SCOPES:
            url, body = rule.call(gov)
            token = issuer.mint(person(role, project), [f"g-{role}-{project or 'fleet'}"])
            answer = gov.client.request(method, url, json=body, headers=bearer(token), follow_redirects=False)
            want = allowed(rule, role, project)
            if (answer.status_code in (401, 403)) == want or (not want and answer.status_code != 403):
                wrong.append(f"{role} of {project or 'the fleet'}: {answer.status_code} {answer.text[:120]}")
    assert not wrong, f"{method} {operation[1]} ({rule.role}, {rule.scope}):\n  " + "\n  ".join(wrong)

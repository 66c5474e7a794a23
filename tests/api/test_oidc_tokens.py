"""ID tokens of the company's OpenID Provider at the API: the good one is let in with its RoleBindings'
rights, each bad one is refused with 401 and an audit entry saying why, keys rotate without a restart,
and made-up key ids cannot make the API hammer the provider.

The provider here is `LocalIssuer` (discovery and JWKS over real HTTP, keys held by the test), which can
sign what an honest provider never would; tests/e2e/test_sso_e2e.py runs a real one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from polycloud.services.oidc import OidcConfig, OidcVerifier

from .conftest import CLUSTER, Governed, service
from .issuer import AUDIENCE, LocalIssuer, hmac_with, tampered, unsigned


def binding(name: str, role: str, project: str | None, **subject: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"role": role, "subjects": [subject]}
    if project is not None:
        spec["project"] = project
    return {"apiVersion": "polycloud/v1", "kind": "RoleBinding", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer()
    yield local
    local.close()


def use_provider(gov: Governed, issuer: LocalIssuer, cooldown_s: float = 0.0) -> None:
    """Make the API accept `issuer`'s ID tokens (what POLYCLOUD_OIDC_ISSUER does at start)."""
    config = OidcConfig(issuer=issuer.url, audience=AUDIENCE, cooldown_s=cooldown_s)
    app = gov.client.app
    app.state.ctx = dataclasses.replace(app.state.ctx, oidc=OidcVerifier(config))  # type: ignore[attr-defined]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def audit_entries(gov: Governed) -> list[dict[str, Any]]:
    answer = gov.client.get("/api/v1/audit?limit=1000", headers=gov.token("admin"))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
def bound(governed: Governed, issuer: LocalIssuer) -> Governed:
    """alice's group ml-alpha deploys project alpha; bob views the fleet; nobody else is bound."""
    use_provider(governed, issuer)
    docs = (
        CLUSTER,
        service("alpha-svc", "alpha"),
        service("beta-svc", "beta"),
        binding("alpha-deployers", "deployer", "alpha", group="ml-alpha"),
        binding("bob-views", "viewer", None, user="bob@example.com"),
    )
    applied = governed.apply(governed.token("admin"), *docs)
    assert applied.status_code == 200, applied.text
    return governed


def test_a_person_acts_with_the_union_of_their_bindings(bound: Governed, issuer: LocalIssuer) -> None:
    alice = bearer(issuer.mint("alice@example.com", ["ml-alpha"]))
    status = bound.client.get("/api/v1/status", headers=alice)
    assert status.status_code == 200, status.text
    assert [s["name"] for s in status.json()["services"]] == ["alpha-svc"]
    assert bound.client.get("/api/v1/session", headers=alice).json()["project"] == "alpha"
    rollback = bound.client.post("/api/v1/workloads/beta-svc/rollback", json={"to": 1}, headers=alice)
    assert rollback.status_code == 403

    bob = bearer(issuer.mint("bob@example.com"))
    assert len(bound.client.get("/api/v1/status", headers=bob).json()["services"]) == 2
    refused = bound.client.post("/api/v1/workloads/alpha-svc/rollback", json={"to": 1}, headers=bob)
    assert refused.status_code == 403 and "deployer" in refused.json()["error"]

    carol = bound.client.get("/api/v1/status", headers=bearer(issuer.mint("carol@example.com", ["ops"])))
    assert carol.status_code == 403
    assert "no RoleBinding names carol@example.com" in carol.json()["error"]

    entries = audit_entries(bound)
    sign_ins = {e["detail"]["username"]: e for e in entries if e["action"] == "auth.oidc"}
    assert sign_ins["alice@example.com"]["detail"]["grants"] == ["deployer@alpha"]
    assert sign_ins["alice@example.com"]["detail"]["issuer"] == issuer.url
    denied = next(e for e in entries if e["action"] == "auth.forbidden" and "carol" in e["actor"])
    assert denied["detail"]["issuer"] == issuer.url and denied["detail"]["groups"] == ["ops"]
    assert "no RoleBinding" in denied["detail"]["reason"]


def test_signed_in_people_keep_working_while_the_provider_is_down(
    bound: Governed, issuer: LocalIssuer
) -> None:
    """The provider's keys are cached: its outage stops no one already holding a valid token, and a
    token under a key the cache does not hold is refused (401), never let through."""
    alice = bearer(issuer.mint("alice@example.com", ["ml-alpha"]))
    assert bound.client.get("/api/v1/status", headers=alice).status_code == 200  # keys fetched
    unknown = issuer.add_key(publish=False)
    late = bearer(issuer.mint("alice@example.com", ["ml-alpha"], kid=unknown))
    issuer.close()
    for _ in range(3):
        assert bound.client.get("/api/v1/status", headers=alice).status_code == 200
    assert bound.client.get("/api/v1/status", headers=late).status_code == 401


def test_polycloud_tokens_keep_working_beside_the_provider(bound: Governed) -> None:
    assert bound.client.get("/api/v1/status", headers=bound.token("viewer")).status_code == 200


def _bad_tokens(issuer: LocalIssuer, second: LocalIssuer) -> dict[str, tuple[str, str]]:
    """name -> (token, what the refusal's reason says)."""
    now = int(time.time())
    alice = issuer.claims("alice@example.com", ["ml-alpha"])
    good = issuer.mint("alice@example.com", ["ml-alpha"])
    stranger = issuer.add_key(publish=False)
    return {
        "expired": (issuer.mint("alice@example.com", exp=now - 120, iat=now - 720), "expired"),
        "not yet valid": (issuer.mint("alice@example.com", nbf=now + 600), "not yet valid"),
        "wrong audience": (issuer.mint("alice@example.com", aud="someone-else"), "wrong audience"),
        "wrong issuer": (issuer.mint("alice@example.com", iss="https://evil.example.com"), "wrong issuer"),
        "tampered payload": (tampered(good, email="bob@example.com"), "bad signature"),
        "alg none": (unsigned(alice, issuer.signing), "'none' is not allowed"),
        "HS256 with the public key": (hmac_with(alice, issuer.signing, issuer.public_pem()), "'HS256'"),
        "unknown kid": (issuer.mint("alice@example.com", kid=stranger), "does not publish"),
        "second provider": (second.mint("alice@example.com", ["ml-alpha"]), "does not publish"),
        "missing exp": (issuer.mint("alice@example.com", exp=None), "exp"),
    }


def test_each_bad_token_is_refused_and_audited(bound: Governed, issuer: LocalIssuer) -> None:
    second = LocalIssuer()
    try:
        cases = _bad_tokens(issuer, second)
        for name, (token, why) in cases.items():
            answer = bound.client.get("/api/v1/status", headers=bearer(token))
            assert answer.status_code == 401, f"{name}: {answer.status_code} {answer.text}"
            assert why in answer.json()["error"], f"{name}: {answer.json()['error']}"
    finally:
        second.close()
    failed = [e for e in audit_entries(bound) if e["action"] == "auth.failed"]
    assert len(failed) == len(cases)
    reasons = [e["detail"]["reason"] for e in failed]
    for name, (_, why) in cases.items():
        assert any(why in r for r in reasons), f"{name} not audited: {reasons}"
    assert all(e["detail"].get("claimedSubject") for e in failed if "none" not in e["detail"]["reason"])


def test_a_rotated_key_is_picked_up_without_a_restart(bound: Governed, issuer: LocalIssuer) -> None:
    old = issuer.signing
    assert bound.client.get("/api/v1/status", headers=bearer(issuer.mint("bob@example.com"))).is_success
    issuer.signing = issuer.add_key(publish=True)  # the provider rotates: a new key signs, the old stays
    fetches = issuer.jwks_fetches
    fresh = bound.client.get("/api/v1/status", headers=bearer(issuer.mint("bob@example.com")))
    assert fresh.status_code == 200, fresh.text
    assert issuer.jwks_fetches == fetches + 1
    still = bearer(issuer.mint("bob@example.com", kid=old))
    assert bound.client.get("/api/v1/status", headers=still).status_code == 200


def test_unknown_key_ids_refresh_the_keys_at_most_once_per_cooldown(
    governed: Governed, issuer: LocalIssuer
) -> None:
    use_provider(governed, issuer, cooldown_s=3600)
    assert (
        governed.client.get("/api/v1/status", headers=bearer(issuer.mint("x@example.com"))).status_code == 403
    )
    fetches = issuer.jwks_fetches
    for _ in range(5):
        made_up = issuer.add_key(publish=False)
        answer = governed.client.get(
            "/api/v1/status", headers=bearer(issuer.mint("x@example.com", kid=made_up))
        )
        assert answer.status_code == 401
    assert issuer.jwks_fetches == fetches  # still cooling down from the first fetch


def test_a_deployer_may_not_grant_roles_but_keeps_the_bindings(bound: Governed, issuer: LocalIssuer) -> None:
    deployer = bound.token("deployer")
    grab = binding("mine", "admin", None, user="mallory@example.com")
    refused = bound.apply(deployer, CLUSTER, service("alpha-svc", "alpha"), service("beta-svc", "beta"), grab)
    assert refused.status_code == 403 and "only a fleet-wide admin" in refused.json()["error"]
    kept = bound.apply(deployer, CLUSTER, service("alpha-svc", "alpha"), service("beta-svc", "beta"))
    assert kept.status_code == 200, kept.text
    alice = bearer(issuer.mint("alice@example.com", ["ml-alpha"]))
    assert bound.client.get("/api/v1/status", headers=alice).status_code == 200

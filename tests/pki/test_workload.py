"""Workload identity tokens, pure: claims, the key schedule across a rotation, renewal at half life, and
a verification by PyJWT against the published JWK Set."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import jwt
import pytest

from polycloud.pki import workload as wl

ISSUER = "https://polycloud.example.com"
WORKLOAD = wl.Workload(
    project="risk",
    kind="service",
    name="scorer",
    cluster="eks-use1",
    provider="aws",
    region="us-east-1",
    audience="sts.amazonaws.com",
)


@pytest.fixture(scope="module")
def keys() -> tuple[wl.SigningKey, wl.SigningKey]:
    return wl.new_key(1, 1000.0), wl.new_key(2, 5000.0)


def verify(
    token: str, published: list[wl.PublicKey], *, now: float, audience: str = "sts.amazonaws.com"
) -> dict[str, Any]:
    """What a cloud does: pick the key by `kid` from the JWKS, check signature, iss, aud and times."""
    kid = jwt.get_unverified_header(token)["kid"]
    document = wl.jwks(published)
    found = next((k for k in document["keys"] if k["kid"] == kid), None)
    if found is None:
        raise jwt.InvalidKeyError(f"kid {kid} is not in the JWKS")
    key = jwt.PyJWK(found).key
    decoded: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
        # The times are checked against the schedule's clock below, not this machine's.
        options={
            "require": ["iss", "sub", "aud", "iat", "nbf", "exp"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    assert decoded["nbf"] <= now < decoded["exp"]
    return decoded


def test_claims_name_the_workload_and_where_it_runs() -> None:
    body = wl.claims(WORKLOAD, ISSUER, now=1700000000.7, ttl_s=3600)

    assert body == {
        "iss": ISSUER,
        "sub": "system:polycloud:risk:service:scorer:cluster:eks-use1",
        "aud": "sts.amazonaws.com",
        "iat": 1700000000,
        "nbf": 1700000000,
        "exp": 1700003600,
        "project": "risk",
        "service": "scorer",
        "cluster": "eks-use1",
        "provider": "aws",
        "region": "us-east-1",
    }
    job = wl.Workload("_fleet", "job", "train", "gke", "gcp", "us-central1", "//iam.googleapis.com/x")
    assert wl.claims(job, ISSUER, 0, 60)["job"] == "train"
    assert "service" not in wl.claims(job, ISSUER, 0, 60)


def test_discovery_names_what_the_clouds_read() -> None:
    document = wl.discovery(ISSUER)

    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    for field in ("response_types_supported", "subject_types_supported", "claims_supported"):
        assert document[field]


def test_a_jwk_carries_its_thumbprint_as_kid_and_no_private_part(keys: tuple[wl.SigningKey, ...]) -> None:
    jwk = keys[0].public.jwk

    assert jwk["kid"] == keys[0].public.kid and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert wl.PublicKey.from_json(1, keys[0].public.to_json()) == keys[0].public


def test_a_rotation_publishes_before_signing_and_retires_after_the_last_token_expired(
    keys: tuple[wl.SigningKey, wl.SigningKey],
) -> None:
    old, new = keys
    both = [old.public, new.public]
    publish, ttl = 600.0, 3600.0
    switch = new.public.created_at + publish

    # Before the switch the old key signs, and both are published: verifiers learn the new one first.
    assert wl.signer(both, switch - 1, publish) == old.public
    assert wl.published(both, switch - 1, publish, ttl) == [new.public, old.public]
    before = wl.sign(old, wl.claims(WORKLOAD, ISSUER, switch - 1, ttl))

    # After it the new key signs; the old one's last token verifies until it expires.
    assert wl.signer(both, switch, publish) == new.public
    after = wl.sign(new, wl.claims(WORKLOAD, ISSUER, switch, ttl))
    assert jwt.get_unverified_header(after)["kid"] == new.public.kid
    late = switch - 1 + ttl - 1
    for token in (before, after):
        verify(token, wl.published(both, late, publish, ttl), now=late)

    # The old key leaves only once every token it signed has expired (and the leeway has passed).
    assert old.public in wl.published(both, switch + ttl + wl.LEEWAY_S - 1, publish, ttl)
    assert wl.published(both, switch + ttl + wl.LEEWAY_S, publish, ttl) == [new.public]


def test_the_first_key_signs_at_once(keys: tuple[wl.SigningKey, ...]) -> None:
    assert wl.signer([keys[0].public], keys[0].public.created_at, publish_s=600) == keys[0].public


def test_a_token_of_another_audience_or_a_tampered_one_fails(keys: tuple[wl.SigningKey, ...]) -> None:
    token = wl.sign(keys[0], wl.claims(WORKLOAD, ISSUER, 1000, 3600))
    with pytest.raises(jwt.InvalidAudienceError):
        verify(token, [keys[0].public], now=1000, audience="api://AzureADTokenExchange")
    head, body, signature = token.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{head}.{body[:-4]}AAAA.{signature}", [keys[0].public], now=1000)


def test_a_token_is_due_past_half_its_life() -> None:
    key = wl.new_key(1, 0)
    token = wl.sign(key, wl.claims(WORKLOAD, ISSUER, 1000, 3600))

    assert not wl.due(token, now=1000 + 1799)
    assert wl.due(token, now=1000 + 1800)
    assert wl.due("not a token")


class Counting:
    def __init__(self, key: wl.SigningKey) -> None:
        self.key = key
        self.calls = 0

    def token(self, kind: wl.Kind, name: str, revision: int, cluster: str) -> str:
        self.calls += 1
        return wl.sign(self.key, wl.claims(WORKLOAD, ISSUER, 10**10 if self.calls > 1 else 1000, 3600))


def test_a_token_file_is_private_and_replaced_only_when_due(
    tmp_path: Path, keys: tuple[wl.SigningKey, ...]
) -> None:
    path = tmp_path / "identity" / "token"
    issuer = Counting(keys[0])

    assert wl.refresh(issuer, path, "service", "scorer", 1, "eks-use1")  # none yet
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert wl.refresh(issuer, path, "service", "scorer", 1, "eks-use1")  # issued in 1970 + 1000 s: due
    assert not wl.refresh(issuer, path, "service", "scorer", 1, "eks-use1")  # fresh (issued far ahead)
    assert issuer.calls == 2
    assert [p.name for p in path.parent.iterdir()] == ["token"]  # no temporary file left behind

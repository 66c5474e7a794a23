"""Workload identity tokens: polycloud as an OpenID Connect issuer for its own replicas and jobs.

Pure: signing keys, their schedule, the claims, the discovery document and the JWKS; the server keeps
the keys (`polycloud.server.workload`) and drivers write the tokens (`WorkloadTokens`). RS256 only: the
one algorithm AWS IAM OIDC providers, GCP workload identity pools and Azure federated credentials all
accept.

Key schedule (no state beyond each key's creation time): keys are numbered; the first signs at once, a
later one once it has been published for `publish_s` (verifiers that cached the JWKS have refetched).
A key stops signing when its successor starts, and stays published `ttl_s + LEEWAY_S` longer, until
every token it signed has expired: no valid token ever stops verifying.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from polycloud.errors import PermanentError

ALGORITHM = "RS256"
LEEWAY_S = 60.0
"""Clock skew a verifier may allow past `exp`: a retired key outlives its last token by this much."""
KEY_BITS = 2048
DEFAULT_AUDIENCE = "sts.amazonaws.com"
UNSCOPED = "_fleet"
"""The project of workloads without a `project` label (a name no project can take)."""
TOKEN_ENV = "POLYCLOUD_IDENTITY_TOKEN_FILE"
TOKEN_FILE = "token"
CLAIMS = (
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "project",
    "service",
    "job",
    "cluster",
    "provider",
    "region",
)
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"

Kind = Literal["service", "job"]


@dataclass(frozen=True)
class Workload:
    """Who a token speaks for, and where it runs."""

    project: str
    kind: Kind
    name: str
    cluster: str
    provider: str
    region: str
    audience: str = DEFAULT_AUDIENCE

    @property
    def subject(self) -> str:
        """`system:polycloud:<project>:<kind>:<name>:cluster:<cluster>`: a prefix match (`...:cluster:*`)
        names one workload in every cluster."""
        return f"system:polycloud:{self.project}:{self.kind}:{self.name}:cluster:{self.cluster}"


@dataclass(frozen=True)
class PublicKey:
    """A published verification key: its number (the newest is the last made), id, JWK and birth."""

    number: int
    kid: str
    jwk: dict[str, Any]
    created_at: float

    def to_json(self) -> str:
        return json.dumps({"kid": self.kid, "jwk": self.jwk, "createdAt": self.created_at}, sort_keys=True)

    @classmethod
    def from_json(cls, number: int, text: str) -> PublicKey:
        data = json.loads(text)
        return cls(number, str(data["kid"]), dict(data["jwk"]), float(data["createdAt"]))


@dataclass(frozen=True)
class SigningKey:
    """A private key with its public half as published."""

    public: PublicKey
    private_pem: str

    @cached_property
    def private(self) -> rsa.RSAPrivateKey:
        """The parsed key, kept: parsing checks the RSA key, some 30 ms, far more than a signature."""
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PermanentError(f"workload signing key {self.public.kid} is not an RSA key")
        return key


def new_key(number: int, now: float) -> SigningKey:
    """A fresh RSA key; its `kid` is the RFC 7638 thumbprint of its public JWK."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.pop("key_ops", None)  # RFC 7517 §4.3: not beside `use`, which every cloud reads
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    jwk |= {"kid": kid, "use": "sig", "alg": ALGORITHM}
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey(PublicKey(number, kid, jwk, now), pem)


def signer(keys: Sequence[PublicKey], now: float, publish_s: float) -> PublicKey:
    """The key that signs at `now`: the newest published for `publish_s` (the first key at once)."""
    first = min(k.number for k in keys)
    ready = [k for k in keys if k.number == first or k.created_at + publish_s <= now]
    return max(ready, key=lambda k: k.number)


def published(keys: Sequence[PublicKey], now: float, publish_s: float, ttl_s: float) -> list[PublicKey]:
    """The keys a verifier must know at `now`, newest first: the signer, the ones waiting to sign, and
    retired ones until the last token they signed has expired (plus `LEEWAY_S`)."""
    if not keys:
        return []
    ordered = sorted(keys, key=lambda k: k.number)
    current = signer(ordered, now, publish_s).number
    kept = []
    for key, successor in zip(ordered, [*ordered[1:], None], strict=True):
        retired_at = successor.created_at + publish_s if successor is not None else None
        if key.number >= current or (retired_at is not None and now < retired_at + ttl_s + LEEWAY_S):
            kept.append(key)
    return kept[::-1]


def claims(workload: Workload, issuer: str, now: float, ttl_s: float) -> dict[str, Any]:
    """The token's claims: registered ones, then polycloud's (the workload's project, name, place)."""
    issued = int(now)
    body: dict[str, Any] = {
        "iss": issuer,
        "sub": workload.subject,
        "aud": workload.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl_s),
        "project": workload.project,
        workload.kind: workload.name,
        "cluster": workload.cluster,
        "provider": workload.provider,
        "region": workload.region,
    }
    return body


def sign(key: SigningKey, body: dict[str, Any]) -> str:
    """A compact JWS of `body`, RS256, naming the key by `kid` (and `typ: JWT`)."""
    return jwt.encode(body, key.private, algorithm=ALGORITHM, headers={"kid": key.public.kid, "typ": "JWT"})


def jwks(keys: Sequence[PublicKey]) -> dict[str, Any]:
    """The JWK Set document."""
    return {"keys": [k.jwk for k in keys]}


def discovery(issuer: str) -> dict[str, Any]:
    """The OpenID Provider metadata the clouds read (AWS, GCP and Azure each read `issuer` and
    `jwks_uri`; the rest is what the specification requires of a provider)."""
    base = issuer.rstrip("/")
    return {
        "issuer": issuer,
        "jwks_uri": base + JWKS_PATH,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": list(CLAIMS),
    }


def due(token: str, now: float | None = None) -> bool:
    """Whether a token must be replaced: past half its life (or unreadable)."""
    try:
        body = jwt.decode(token, options={"verify_signature": False})
        issued, expires = float(body["iat"]), float(body["exp"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return True
    return (time.time() if now is None else now) >= issued + (expires - issued) / 2


def write_token(path: Path, token: str) -> None:
    """Replace the token file at once (a reader sees the old token or the new one, never half), 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    os.replace(partial, path)


class WorkloadTokens(Protocol):
    """What drivers need of the workload issuer (`polycloud.server.workload` provides it)."""

    def token(self, kind: Kind, name: str, revision: int, cluster: str) -> str:
        """A fresh token for revision `revision` of workload `name` running in `cluster`."""
        ...


def refresh(tokens: WorkloadTokens, path: Path, kind: Kind, name: str, revision: int, cluster: str) -> bool:
    """Write a new token to `path` when there is none or it is past half its life; whether it did."""
    try:
        current = path.read_text()
    except OSError:
        current = ""
    if current and not due(current):
        return False
    write_token(path, tokens.token(kind, name, revision, cluster))
    return True

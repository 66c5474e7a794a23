"""Verify the ID tokens of the company's OpenID Provider (POLYCLOUD_OIDC_*); PyJWT does the JOSE work.

The discovery document and the provider's JWKS are fetched on first use and cached; a token signed with
a key the cache does not hold makes `PyJWKClient` fetch the JWKS once more, at most once per
`cooldown_s` (a rotation at the provider is picked up without a restart, and a stream of made-up `kid`s
cannot make polycloud hammer the provider). Only asymmetric algorithms are accepted: never `none`, never
an HMAC whose "secret" would be the provider's public key.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from polycloud import openid
from polycloud.services.governance import UnauthenticatedError

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Signature algorithms a provider's token may use (asymmetric only)."""
LEEWAY_S = 30
"""Clock skew tolerated on `exp`, `nbf` and `iat`."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    username_claim: str = "email"
    groups_claim: str = "groups"
    cooldown_s: float = 10.0
    """Least time between two JWKS fetches caused by unknown key ids."""
    client_secret: str | None = field(default=None, repr=False)
    """For the dashboard's code flow, when the provider wants a confidential client."""

    @property
    def client(self) -> tuple[str, str | None]:
        return self.audience, self.client_secret


@dataclass(frozen=True)
class Identity:
    """A person a valid ID token names."""

    subject: str
    issuer: str
    username: str
    groups: tuple[str, ...]
    expires: int
    """The token's `exp` (seconds since the epoch)."""


class OidcVerifier:
    """Checks ID tokens of one provider; thread-safe."""

    def __init__(self, config: OidcConfig, *, timeout_s: float = 5.0) -> None:
        self.config = config
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None

    def discovery(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once; again after a failed fetch)."""
        with self._lock:
            if self._discovery is None:
                try:
                    self._discovery = openid.discover(self.config.issuer, self._timeout_s)
                except openid.OpenIdError as e:
                    raise UnauthenticatedError(str(e)) from None
            return self._discovery

    def _keys(self) -> jwt.PyJWKClient:
        document = self.discovery()
        with self._lock:
            if self._jwks is None:
                self._jwks = jwt.PyJWKClient(
                    str(document["jwks_uri"]),
                    lifespan=3600,
                    timeout=self._timeout_s,
                    cooldown_duration=self.config.cooldown_s,
                )
            return self._jwks

    def verify(self, token: str, *, nonce: str | None = None) -> Identity:
        """The person `token` names.

        Raises:
            UnauthenticatedError: The token is malformed, badly or not signed by the provider, for
                another audience or issuer, expired or not yet valid (the reason says which).
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise UnauthenticatedError("malformed ID token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise UnauthenticatedError(f"ID token algorithm {alg!r} is not allowed")
        claims = self._decode(token, header, str(alg))
        if nonce is not None and claims.get("nonce") != nonce:
            raise UnauthenticatedError("ID token nonce does not match this sign-in")
        return self._identity(claims)

    def _decode(self, token: str, header: dict[str, Any], alg: str) -> dict[str, Any]:
        try:
            key = self._keys().get_signing_key(str(header.get("kid", "")))
        except jwt.PyJWKClientError as e:
            if "Unable to find" not in str(e):  # PyJWT's words for a key id the JWKS lacks
                raise UnauthenticatedError(f"the OpenID Provider's keys cannot be fetched: {e}") from None
            raise UnauthenticatedError(
                f"ID token signed with key {header.get('kid')!r}, which the provider does not publish"
            ) from None
        except (httpx.HTTPError, OSError, ValueError) as e:
            raise UnauthenticatedError(f"the OpenID Provider cannot be reached: {e}") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as e:
            raise UnauthenticatedError(f"ID token rejected: {_reason(e)}") from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        username = claims.get(self.config.username_claim)
        if not isinstance(username, str) or not username:
            raise UnauthenticatedError(f"ID token has no {self.config.username_claim!r} claim")
        groups = claims.get(self.config.groups_claim, [])
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            raise UnauthenticatedError(f"ID token claim {self.config.groups_claim!r} is not a list")
        return Identity(
            subject=str(claims["sub"]),
            issuer=self.config.issuer,
            username=username,
            groups=tuple(str(g) for g in groups),
            expires=int(claims["exp"]),
        )


def _reason(error: jwt.PyJWTError) -> str:
    reasons: list[tuple[type[jwt.PyJWTError], str]] = [
        (jwt.ExpiredSignatureError, "expired"),
        (jwt.ImmatureSignatureError, "not yet valid"),
        (jwt.InvalidAudienceError, "wrong audience"),
        (jwt.InvalidIssuerError, "wrong issuer"),
        (jwt.InvalidSignatureError, "bad signature"),
        (jwt.InvalidAlgorithmError, "algorithm not allowed for this key"),
        (jwt.MissingRequiredClaimError, str(error)),
    ]
    return next((text for kind, text in reasons if isinstance(error, kind)), str(error) or "invalid")


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (header.payload.signature), as opposed to a polycloud `pc_` token."""
    return token.count(".") == 2  # polycloud's own secrets are url-safe base64: never a dot


def claimed(token: str) -> dict[str, str]:
    """What a token that failed its checks claims to be (`issuer`, `subject`, `kid`, `alg`), unverified and
    cut short: the audit trail says who tried, without trusting it."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    found = {
        "claimedIssuer": claims.get("iss"),
        "claimedSubject": claims.get("sub"),
        "kid": header.get("kid"),
        "alg": header.get("alg"),
    }
    return {k: str(v)[:200] for k, v in found.items() if v is not None}


def exchange_code(
    document: dict[str, Any], client: tuple[str, str | None], code: str, redirect_uri: str, verifier: str
) -> dict[str, Any]:
    """`openid.exchange_code`, its failures a 401 with the provider's reason."""
    try:
        return openid.exchange_code(document, client, code, redirect_uri, verifier)
    except openid.OpenIdError as e:
        raise UnauthenticatedError(str(e)) from None

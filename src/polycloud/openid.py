"""The OpenID Connect protocol as both ends of polycloud use it: discovery, PKCE, the authorization URL
and the token endpoint (the server's dashboard sign-in and `polycloud login` share them). Plain httpx
and the standard library, so the CLI can use it without the server's stack; tokens are verified by
`polycloud.services.oidc` (PyJWT).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from polycloud.errors import UserError

DISCOVERY = "/.well-known/openid-configuration"


class OpenIdError(UserError):
    """The OpenID Provider cannot be reached, or refused (the reason is the provider's)."""


def discover(issuer: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The discovery document of `issuer`, checked to name that very issuer.

    Raises:
        OpenIdError: The provider cannot be reached or its document is not its own.
    """
    try:
        answer = httpx.get(issuer.rstrip("/") + DISCOVERY, timeout=timeout_s, follow_redirects=False)
        answer.raise_for_status()
        document = answer.json()
    except (httpx.HTTPError, ValueError) as e:
        raise OpenIdError(f"the OpenID Provider {issuer} cannot be reached: {e}") from None
    if not isinstance(document, dict) or document.get("issuer") != issuer or "jwks_uri" not in document:
        raise OpenIdError(f"the discovery document of {issuer} does not name that issuer")
    return document


@dataclass(frozen=True)
class Pkce:
    """One authorization-code sign-in's secrets: `state` and `nonce` bind the answer to this browser,
    `verifier` (RFC 7636, S256) to this client."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Pkce:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


SCOPES = "openid email profile groups offline_access"


def authorization_url(document: dict[str, Any], client_id: str, redirect_uri: str, flow: Pkce) -> str:
    """Where a browser signs in: the provider's authorization endpoint with this flow's parameters."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": flow.challenge,
        "code_challenge_method": "S256",
    }
    return f"{document['authorization_endpoint']}?{urlencode(query)}"


def exchange_code(
    document: dict[str, Any],
    client: tuple[str, str | None],
    code: str,
    redirect_uri: str,
    verifier: str,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Trade an authorization code for the provider's tokens (`client`: id and optional secret).

    Raises:
        OpenIdError: The provider refused the code (its reason), or cannot be reached.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    status, body = token_request(document, client, form, timeout_s)
    if status != 200 or "id_token" not in body:
        raise OpenIdError(f"the OpenID Provider refused the sign-in: {_reason(body, status)}")
    return body


def token_request(
    document: dict[str, Any], client: tuple[str, str | None], form: dict[str, str], timeout_s: float = 10.0
) -> tuple[int, dict[str, Any]]:
    """POST `form` to the provider's token endpoint as `client` (id, optional secret): status and body.

    Raises:
        OpenIdError: The provider cannot be reached or does not answer JSON.
    """
    client_id, secret = client
    auth = httpx.BasicAuth(client_id, secret) if secret else None
    data = form if secret else {**form, "client_id": client_id}
    try:
        answer = httpx.post(str(document["token_endpoint"]), data=data, auth=auth, timeout=timeout_s)
        body = answer.json()
    except (httpx.HTTPError, ValueError) as e:
        raise OpenIdError(f"the OpenID Provider cannot be reached: {e}") from None
    if not isinstance(body, dict):
        raise OpenIdError("the OpenID Provider's token endpoint did not answer a JSON object")
    return answer.status_code, body


def _reason(body: dict[str, Any], status: int) -> str:
    return str(body.get("error_description") or body.get("error") or f"HTTP {status}")


@dataclass(frozen=True)
class DeviceGrant:
    """A device authorization (RFC 8628 §3.2): what to show the person, and what to poll with."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


def start_device(document: dict[str, Any], client_id: str, timeout_s: float = 10.0) -> DeviceGrant:
    """Ask the provider for a device code (RFC 8628 §3.1).

    Raises:
        OpenIdError: The provider has no device endpoint, cannot be reached or refused.
    """
    endpoint = document.get("device_authorization_endpoint")
    if not endpoint:
        raise OpenIdError("the OpenID Provider offers no device authorization endpoint")
    try:
        answer = httpx.post(str(endpoint), data={"client_id": client_id, "scope": SCOPES}, timeout=timeout_s)
        body = answer.json()
    except (httpx.HTTPError, ValueError) as e:
        raise OpenIdError(f"the OpenID Provider cannot be reached: {e}") from None
    if answer.status_code != 200 or not isinstance(body, dict) or "device_code" not in body:
        detail = _reason(body, answer.status_code) if isinstance(body, dict) else answer.status_code
        raise OpenIdError(f"the OpenID Provider refused a device code: {detail}")
    return DeviceGrant(
        device_code=str(body["device_code"]),
        user_code=str(body["user_code"]),
        verification_uri=str(body["verification_uri"]),
        verification_uri_complete=body.get("verification_uri_complete"),
        expires_in=float(body.get("expires_in", 600)),
        interval=float(body.get("interval", 5)),
    )


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_S = 5.0
"""RFC 8628 §3.5: each `slow_down` adds five seconds to the polling interval."""


def poll_device(
    document: dict[str, Any],
    client_id: str,
    grant: DeviceGrant,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Poll the token endpoint every `interval` seconds until the person approves (RFC 8628 §3.4–3.5);
    `slow_down` lengthens the interval by five seconds. The provider's tokens.

    Raises:
        OpenIdError: The person refused, or the code expired.
    """
    interval, deadline = max(grant.interval, 1.0), clock() + grant.expires_in
    form = {"grant_type": DEVICE_GRANT, "device_code": grant.device_code}
    while clock() < deadline:
        sleep(interval)
        status, body = token_request(document, (client_id, None), form)
        if status == 200 and "id_token" in body:
            return body
        error = body.get("error")
        if error == "slow_down":
            interval += SLOW_DOWN_S
        elif error != "authorization_pending":
            raise OpenIdError(f"the sign-in did not complete: {_reason(body, status)}")
    raise OpenIdError("the device code expired before the sign-in was approved; run polycloud login again")


def refresh(
    document: dict[str, Any], client_id: str, refresh_token: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """New tokens for a refresh token.

    Raises:
        OpenIdError: The provider refused it (expired or revoked): sign in again.
    """
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    status, body = token_request(document, (client_id, None), form, timeout_s)
    if status != 200 or "id_token" not in body:
        raise OpenIdError(f"the OpenID Provider refused to refresh the sign-in: {_reason(body, status)}")
    return body

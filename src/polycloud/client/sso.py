"""`polycloud login`: sign in with the control plane's OpenID Provider, keep the credentials, refresh them.

The control plane names its provider and client (`GET /api/v1/auth/oidc`). The sign-in is the device
authorization grant (RFC 8628: the person opens a URL and types a code, this process polls), or, with
`--no-device` or a provider without a device endpoint, the authorization code flow with PKCE answered on
a loopback port (RFC 8252). The credentials (ID token, refresh token) are kept 0600 in the user's config
folder, one file per control plane, and refreshed shortly before the ID token expires.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from polycloud import openid
from polycloud.errors import UserError
from polycloud.homefiles import config_dir, write_private

REFRESH_BEFORE_S = 60.0
"""Refresh an ID token this long before it expires."""
LOOPBACK_WAIT_S = 300.0


@dataclass(frozen=True)
class Credentials:
    server: str
    issuer: str
    client_id: str
    id_token: str
    refresh_token: str | None
    expires_at: float
    """When the ID token expires (seconds since the epoch)."""


def credentials_path(server: str) -> Path:
    """Where the credentials for the control plane at `server` are kept."""
    key = hashlib.sha256(server.rstrip("/").encode()).hexdigest()[:16]
    return config_dir() / "credentials" / f"{key}.json"


def save(credentials: Credentials) -> Path:
    return write_private(credentials_path(credentials.server), json.dumps(asdict(credentials)))


def load(server: str) -> Credentials | None:
    try:
        data = json.loads(credentials_path(server).read_text())
        return Credentials(**data)
    except (OSError, ValueError, TypeError):
        return None


def forget(server: str) -> bool:
    """Remove the credentials for `server`; whether there were any."""
    try:
        credentials_path(server).unlink()
    except FileNotFoundError:
        return False
    return True


def provider_of(server: str, verify: Any = True) -> dict[str, Any]:
    """What the control plane at `server` says about its OpenID Provider.

    Raises:
        UserError: It has none configured, or cannot be reached.
    """
    try:
        answer = httpx.get(f"{server.rstrip('/')}/api/v1/auth/oidc", timeout=10.0, verify=verify)
    except httpx.HTTPError as e:
        raise UserError(f"the control plane at {server} cannot be reached: {e}") from None
    if answer.status_code == 404:
        raise UserError(f"the control plane at {server} has no single sign-on (POLYCLOUD_OIDC_ISSUER)")
    if answer.status_code != 200:
        raise UserError(f"the control plane at {server} answered {answer.status_code}: {answer.text[:200]}")
    found: dict[str, Any] = answer.json()
    return found


def login(
    server: str,
    *,
    device: bool,
    say: Callable[[str], None],
    open_browser: Callable[[str], object],
    verify: Any = True,
) -> Credentials:
    """Sign in for the control plane at `server` and keep the credentials."""
    provider = provider_of(server, verify)
    issuer, client_id = str(provider["issuer"]), str(provider["clientId"])
    document = openid.discover(issuer)
    if device and document.get("device_authorization_endpoint"):
        tokens = _device_flow(document, client_id, say)
    else:
        tokens = _code_flow(document, client_id, say, open_browser)
    credentials = _credentials(server, issuer, client_id, tokens, None)
    save(credentials)
    return credentials


def _device_flow(document: dict[str, Any], client_id: str, say: Callable[[str], None]) -> dict[str, Any]:
    grant = openid.start_device(document, client_id)
    say(f"To sign in, open {grant.verification_uri} and enter the code {grant.user_code}")
    if grant.verification_uri_complete:
        say(f"(or open {grant.verification_uri_complete})")
    return openid.poll_device(document, client_id, grant, time.sleep, time.time)


def _code_flow(
    document: dict[str, Any],
    client_id: str,
    say: Callable[[str], None],
    open_browser: Callable[[str], object],
) -> dict[str, Any]:
    flow = openid.Pkce.new()
    with _Loopback() as loopback:
        url = openid.authorization_url(document, client_id, loopback.redirect_uri, flow)
        say(f"To sign in, open {url}")
        open_browser(url)
        answer = loopback.wait(LOOPBACK_WAIT_S)
    if answer.get("state") != flow.state:
        raise UserError("the sign-in answer does not belong to this login (state mismatch)")
    if "error" in answer:
        raise UserError(f"the OpenID Provider refused the sign-in: {answer['error']}")
    if "code" not in answer:
        raise UserError("the OpenID Provider sent no authorization code")
    return openid.exchange_code(
        document, (client_id, None), answer["code"], loopback.redirect_uri, flow.verifier
    )


class _Loopback:
    """A one-shot HTTP server on 127.0.0.1 (on a port the OS picks) taking the provider's redirect."""

    def __init__(self) -> None:
        self._answer: dict[str, str] = {}
        self._done = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != "/callback":
                    self.send_error(404)
                    return
                outer._answer = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.send_response(200)
                self.send_header("content-type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"polycloud: signed in; you may close this window.\n")
                outer._done.set()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> _Loopback:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout_s: float) -> dict[str, str]:
        if not self._done.wait(timeout_s):
            raise UserError(f"no sign-in answer within {timeout_s:.0f} s")
        return self._answer


def _credentials(
    server: str, issuer: str, client_id: str, tokens: dict[str, Any], previous: str | None
) -> Credentials:
    id_token = str(tokens["id_token"])
    return Credentials(
        server=server.rstrip("/"),
        issuer=issuer,
        client_id=client_id,
        id_token=id_token,
        refresh_token=tokens.get("refresh_token") or previous,
        expires_at=_expiry(id_token),
    )


def _expiry(id_token: str) -> float:
    """The `exp` of an ID token, read without checking it (the server checks; this only schedules)."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return 0.0


def token_for(server: str, *, now: Callable[[], float] = time.time) -> str | None:
    """The ID token to call `server` with, refreshed first when it is about to expire; None when this
    user has not signed in there.

    Raises:
        UserError: The sign-in expired and cannot be refreshed (run `polycloud login` again).
    """
    found = load(server.rstrip("/"))
    if found is None:
        return None
    if found.expires_at - now() > REFRESH_BEFORE_S:
        return found.id_token
    if not found.refresh_token:
        raise UserError(f"your sign-in to {server} expired: run polycloud login --server {server}")
    try:
        tokens = openid.refresh(openid.discover(found.issuer), found.client_id, found.refresh_token)
    except openid.OpenIdError as e:
        raise UserError(f"{e}; run polycloud login --server {server}") from None
    fresh = _credentials(found.server, found.issuer, found.client_id, tokens, found.refresh_token)
    save(fresh)
    return fresh.id_token

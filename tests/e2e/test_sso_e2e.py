"""Single sign-on end to end: a real OpenID Provider (oidc-provider on Node.js), a real control plane
told to trust it, RoleBindings applied with `polycloud apply`, and people signing in with
`polycloud login` (device flow; code flow with PKCE) and on the dashboard, then acting with exactly
what their bindings give. Keys rotate at the provider and ID tokens are refreshed without a restart.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from tests.e2e.conftest import Polycloud
from tests.e2e.openid_provider import OpenIdProvider, sign_in
from tests.e2e.test_governance_e2e import write_projects

pytestmark = pytest.mark.e2e

USERS = {
    "alice": {"email": "alice@example.com", "groups": ["ml-alpha"]},
    "bob": {"email": "bob@example.com", "groups": ["ops"]},
    "carol": {"email": "carol@example.com", "groups": []},
}
BINDINGS = [
    {
        "apiVersion": "polycloud/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "alpha-deployers"},
        "spec": {"role": "deployer", "project": "alpha", "subjects": [{"group": "ml-alpha"}]},
    },
    {
        "apiVersion": "polycloud/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "ops-viewers"},
        "spec": {"role": "viewer", "subjects": [{"group": "ops"}, {"user": "dave@example.com"}]},
    },
]


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[OpenIdProvider]:
    # ID tokens live 30 s, under the CLI's one-minute margin: each use of a sign-in refreshes it.
    found = OpenIdProvider(tmp_path, USERS, id_token_ttl_s=30)
    yield found
    found.close()


@pytest.fixture
def sso(polycloud: Polycloud, provider: OpenIdProvider, model: Path) -> Polycloud:
    """A control plane trusting `provider`, with two projects and the RoleBindings applied."""
    polycloud.env |= {
        "POLYCLOUD_OIDC_ISSUER": provider.issuer,
        "POLYCLOUD_OIDC_AUDIENCE": "polycloud",
        "POLYCLOUD_OIDC_JWKS_COOLDOWN_S": "0",
        "XDG_CONFIG_HOME": str(polycloud.root / "config"),
        "BROWSER": "true",  # `webbrowser.open` runs `true URL`; the test plays the browser
    }
    spec = write_projects(polycloud.root, model)
    docs = list(yaml.safe_load_all(spec.read_text()))
    spec.write_text(yaml.safe_dump_all([*docs, *BINDINGS], sort_keys=False))
    polycloud.ok("apply", spec, "--yes")
    return polycloud


def api_url(polycloud: Polycloud) -> str:
    info = polycloud.runinfo()
    assert info is not None
    return str(info["api_url"])


def as_person(polycloud: Polycloud, server: str, *args: str) -> tuple[int, str, str]:
    """`polycloud --server SERVER ARGS` with the signed-in person's credentials (no admin token)."""
    saved = dict(polycloud.env)
    polycloud.env["POLYCLOUD_HOME"] = str(polycloud.root / "elsewhere")  # no admin token to fall back on
    try:
        return polycloud.cli("--server", server, *args)
    finally:
        polycloud.env = saved


def credentials(polycloud: Polycloud) -> dict[str, Any]:
    (path,) = (polycloud.root / "config" / "polycloud" / "credentials").glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_cli_sign_in_by_device_and_by_code_then_rotation_and_refresh(
    sso: Polycloud, provider: OpenIdProvider
) -> None:
    server = api_url(sso)
    browser = httpx.Client(follow_redirects=False, trust_env=False, timeout=30)

    login = sso.start("login", "--server", server)
    assert login.wait_for_line("(or open ")
    complete = re.search(r"\(or open (\S+)\)", "".join(login._lines))
    assert complete is not None
    code = parse_qs(urlsplit(complete.group(1)).query)["user_code"][0]
    sign_in(browser, complete.group(1), "alice", user_code=code)
    done = login.finish()
    assert done.rc == 0, done.stderr
    assert "signed in to" in done.stdout and credentials(sso)["refresh_token"]

    rc, out, err = as_person(sso, server, "status", "--json")
    assert rc == 0, err
    assert [s["name"] for s in json.loads(out)["services"]] == ["alpha"]
    rc, _, err = as_person(sso, server, "rollback", "beta", "--to", "1", "--no-wait")
    assert rc == 1 and "403" in err and "Traceback" not in err

    # The authorization code flow with PKCE, answered on a loopback port, for bob.
    login = sso.start("login", "--server", server, "--no-device")
    assert login.wait_for_line("To sign in, open ")
    url = re.search(r"To sign in, open (\S+)", "".join(login._lines))
    assert url is not None
    redirect = parse_qs(urlsplit(url.group(1)).query)["redirect_uri"][0]
    callback = sign_in(
        httpx.Client(follow_redirects=False, trust_env=False), url.group(1), "bob", stop_at=redirect
    )
    assert httpx.get(callback, trust_env=False).status_code == 200
    done = login.finish()
    assert done.rc == 0, done.stderr
    rc, out, err = as_person(sso, server, "status", "--json")
    assert rc == 0 and len(json.loads(out)["services"]) == 2, err

    # The provider rotates its signing key; the next command refreshes bob's ID token (it expires
    # within the minute), which the new key signs; the control plane fetches the new key by itself.
    before = credentials(sso)["id_token"]
    new_kid = provider.rotate()
    rc, out, err = as_person(sso, server, "status", "--json")
    assert rc == 0, err
    after = credentials(sso)["id_token"]
    assert after != before and jwt.get_unverified_header(after)["kid"] == new_kid

    assert sso.ok("logout", "--server", server).stdout.startswith("signed out")
    assert not list((sso.root / "config" / "polycloud" / "credentials").glob("*.json"))

    entries = sso.api().get("/audit", params={"limit": 500}).json()
    sign_ins = {e["detail"]["username"] for e in entries if e["action"] == "auth.oidc"}
    assert {"alice@example.com", "bob@example.com"} <= sign_ins
    refused = next(e for e in entries if e["action"] == "auth.forbidden" and "alice" in e["actor"])
    assert refused["detail"]["issuer"] == provider.issuer and refused["detail"]["subject"] == "alice"


def test_dashboard_sign_in_opens_a_strict_session(sso: Polycloud, provider: OpenIdProvider) -> None:
    server = api_url(sso)
    browser = httpx.Client(follow_redirects=False, trust_env=False, timeout=30)
    assert browser.get(f"{server}/api/v1/auth/oidc").json()["issuer"] == provider.issuer
    callback = sign_in(
        browser, f"{server}/api/v1/auth/oidc/login", "alice", stop_at=f"{server}/api/v1/auth/oidc/"
    )
    landed = browser.get(callback)
    assert landed.status_code == 303, landed.text
    cookie = next(c for c in landed.headers.get_list("set-cookie") if c.startswith("polycloud_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie

    who = browser.get(f"{server}/api/v1/session").json()
    assert who == {"name": "alice@example.com", "role": "deployer", "project": "alpha", "tokenId": 0}
    overview = browser.get(f"{server}/api/v1/status")
    assert overview.status_code == 200 and [s["name"] for s in overview.json()["services"]] == ["alpha"]
    forged = browser.post(f"{server}/api/v1/rollouts/alpha/pause")
    assert forged.status_code == 401 and "x-polycloud-dashboard" in forged.json()["error"]

    carol = httpx.Client(follow_redirects=False, trust_env=False, timeout=30)
    carol.get(
        sign_in(carol, f"{server}/api/v1/auth/oidc/login", "carol", stop_at=f"{server}/api/v1/auth/oidc/")
    )
    refused = carol.get(f"{server}/api/v1/session")
    assert refused.status_code == 403 and "no RoleBinding names carol@example.com" in refused.json()["error"]

    assert (
        browser.delete(f"{server}/api/v1/session", headers={"x-polycloud-dashboard": "1"}).status_code == 204
    )
    assert browser.get(f"{server}/api/v1/session").status_code == 401
    entries = sso.api().get("/audit", params={"limit": 500}).json()
    dashboard = [e for e in entries if e["action"] == "auth.oidc" and e["detail"]["with"] == "dashboard"]
    assert {e["detail"]["username"] for e in dashboard} == {"alice@example.com", "carol@example.com"}


def test_dashboard_sign_in_in_a_browser(sso: Polycloud, provider: OpenIdProvider) -> None:
    """Headless Chromium clicks "Sign in with <provider>", signs in at the provider's pages and lands on
    the dashboard as alice, with a cookie the page's script cannot read."""
    from playwright.sync_api import expect, sync_playwright
    from tests.e2e.browser import PageProblems, launch

    server = api_url(sso)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context()
            page = context.new_page()
            problems = PageProblems().watch(page)
            page.goto(f"{server}/")
            link = page.locator("#sso-link")
            expect(link).to_have_text("Sign in with 127.0.0.1", timeout=20_000)
            link.click()
            page.locator("input[name=login]").fill("alice")
            page.locator("input[name=password]").fill("any")
            page.locator("button[type=submit]").click()
            page.locator("button[type=submit]").click()  # consent
            expect(page.locator("#who")).to_have_text("alice@example.com · deployer of alpha", timeout=20_000)
            cookie = next(c for c in context.cookies() if c["name"] == "polycloud_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == ""
            # The login page's own 401 (before signing in) is expected; the provider's pages are not ours.
            assert not [p for p in problems.all() if server in p and "401" not in p], problems.all()
        finally:
            browser.close()


def test_bad_tokens_are_refused_by_the_running_control_plane(
    sso: Polycloud, provider: OpenIdProvider
) -> None:
    """Tokens made from a real ID token of the real provider (tampered, unsigned, HMAC'd with its public
    key), one signed with a key it never published, and one of a provider nobody configured: each is a
    401 with its reason and an audit entry, while the genuine token works."""
    from tests.api.issuer import LocalIssuer, hmac_with, tampered, unsigned

    from polycloud import openid

    server = api_url(sso)
    document = openid.discover(provider.issuer)
    flow = openid.Pkce.new()
    redirect = "http://127.0.0.1/callback"
    url = openid.authorization_url(document, "polycloud", redirect, flow)
    browser = httpx.Client(follow_redirects=False, trust_env=False, timeout=30)
    answer = parse_qs(urlsplit(sign_in(browser, url, "alice", stop_at=redirect)).query)
    genuine = openid.exchange_code(document, ("polycloud", None), answer["code"][0], redirect, flow.verifier)
    token = str(genuine["id_token"])
    claims = jwt.decode(token, options={"verify_signature": False})
    public = jwt.PyJWKClient(document["jwks_uri"]).get_signing_key_from_jwt(token).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    impostor = LocalIssuer()
    try:
        stranger = impostor.add_key(publish=False)
        forged_kid = jwt.encode(claims, impostor.keys[stranger], "RS256", headers={"kid": stranger})
        bad = {
            "tampered payload": (tampered(token, email="bob@example.com"), "bad signature"),
            "alg none": (unsigned(claims, provider.signing_kid), "'none' is not allowed"),
            "HS256 with the public key": (hmac_with(claims, provider.signing_kid, pem), "'HS256'"),
            "unknown kid": (forged_kid, "does not publish"),
            "second provider": (impostor.mint("alice@example.com", ["ml-alpha"]), "does not publish"),
        }
    finally:
        impostor.close()
    api = httpx.Client(base_url=f"{server}/api/v1", trust_env=False, timeout=30)
    assert api.get("/status", headers={"authorization": f"Bearer {token}"}).status_code == 200
    for name, (forged, why) in bad.items():
        refused = api.get("/status", headers={"authorization": f"Bearer {forged}"})
        assert refused.status_code == 401 and why in refused.json()["error"], f"{name}: {refused.text}"
    failed = [
        e for e in sso.api().get("/audit", params={"limit": 500}).json() if e["action"] == "auth.failed"
    ]
    assert len(failed) == len(bad)
    assert {e["detail"].get("claimedIssuer") for e in failed} == {provider.issuer, impostor.url}

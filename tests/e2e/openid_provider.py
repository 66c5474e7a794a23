"""A real OpenID Provider for the single sign-on tests: panva's `oidc-provider` from the npm registry on
this machine's Node.js, configured by tests/e2e/oidc/provider.mjs, and a driver of its sign-in pages.

`install()` puts the pinned package in ~/.cache/polycloud/oidc-provider once (npm, under a file lock so
parallel workers do not race). `OpenIdProvider` runs it with keys this test generates and rotates;
`sign_in` plays the person: it follows redirects and submits the provider's forms (device code,
login, consent) as a browser would.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

VERSION = "9.13.3"
"""oidc-provider 9 runs on Node.js ^20.19 (ESM, `jose` 6)."""
SOURCE = Path(__file__).with_name("oidc") / "provider.mjs"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "polycloud" / "oidc-provider"
START_TIMEOUT_S = 30.0


def install() -> Path:
    """The provider script, next to its installed `node_modules`; installs them on first use."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: the single sign-on tests run oidc-provider on Node.js 20")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = CACHE / "node_modules" / "oidc-provider" / "package.json"
        if not installed.is_file() or json.loads(installed.read_text())["version"] != VERSION:
            package = {"private": True, "type": "module", "dependencies": {"oidc-provider": VERSION}}
            (CACHE / "package.json").write_text(json.dumps(package))
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=CACHE,
                check=True,
                timeout=600,
            )
        text = SOURCE.read_text()
        script = CACHE / f"provider-{hashlib.sha256(text.encode()).hexdigest()[:12]}.mjs"
        if not script.is_file():
            script.write_text(text)
    return script


def private_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return jwk | {"kid": uuid.uuid4().hex[:12], "use": "sig", "alg": "RS256"}


class OpenIdProvider:
    """oidc-provider on 127.0.0.1 (a port the OS picks), people `users` (login -> email, groups)."""

    def __init__(self, root: Path, users: dict[str, dict[str, Any]], *, id_token_ttl_s: int = 3600) -> None:
        script = install()
        self.keys = [private_jwk()]
        self._jwks = root / "provider-jwks.json"
        self._write_keys()
        env = os.environ | {
            "OIDC_JWKS_FILE": str(self._jwks),
            "OIDC_USERS": json.dumps(users),
            "OIDC_CLIENT_ID": "polycloud",
            "OIDC_ID_TOKEN_TTL": str(id_token_ttl_s),
        }
        self._popen = subprocess.Popen(
            ["node", str(script)], cwd=script.parent, env=env, text=True, stdout=subprocess.PIPE, stderr=None
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.issuer = self._wait_for("ready ").split()[1]

    @property
    def signing_kid(self) -> str:
        return str(self.keys[0]["kid"])

    def _write_keys(self) -> None:
        self._jwks.write_text(json.dumps({"keys": self.keys}))

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            with self._changed:
                self._lines.append(line.strip())
                self._changed.notify_all()

    def _wait_for(self, prefix: str, after: int = 0) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        with self._changed:
            while True:
                found = next((line for line in self._lines[after:] if line.startswith(prefix)), None)
                if found is not None:
                    return found
                if self._popen.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"oidc-provider did not say {prefix!r}: {self._lines}")
                self._changed.wait(0.1)

    def rotate(self) -> str:
        """A new signing key, the old one still published (as providers rotate); its kid."""
        self.keys.insert(0, private_jwk())
        self._write_keys()
        seen = len(self._lines)
        self._popen.send_signal(signal.SIGHUP)
        self._wait_for("rotated", after=seen)
        return self.signing_kid

    def close(self) -> None:
        self._popen.terminate()
        try:
            self._popen.wait(10)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


class _Form(HTMLParser):
    """The first form of a page: its action and the named inputs with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done and self.action is None:
            self.action, self._inside = found.get("action", ""), True
        elif tag == "input" and self._inside and found.get("name"):
            self.fields[found["name"]] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside, self._done = False, True


def sign_in(
    client: httpx.Client, url: str, login: str, *, user_code: str = "", stop_at: str | None = None
) -> str:
    """Play `login` at the provider from `url`: follow redirects and submit each form (device code,
    login, consent). Returns the first redirect that starts with `stop_at`, else the final page's URL."""
    answer = client.get(url)
    for _ in range(30):
        if answer.is_redirect:
            target = urljoin(str(answer.url), answer.headers["location"])
            if stop_at is not None and target.startswith(stop_at):
                return target
            answer = client.get(target)
            continue
        assert answer.status_code == 200, f"{answer.url}: {answer.status_code} {answer.text[:300]}"
        form = _Form()
        form.feed(answer.text)
        if form.action is None:
            return str(answer.url)
        filled = {"login": login, "password": "any", "user_code": user_code}
        fields = {k: v or filled.get(k, "") for k, v in form.fields.items()}
        answer = client.post(urljoin(str(answer.url), form.action), data=fields)
    pytest.fail(f"the sign-in at {url} did not end")

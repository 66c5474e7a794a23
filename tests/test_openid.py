"""`polycloud.openid`'s device-flow polling against a real HTTP token endpoint served by the test:
it waits `interval` between polls, adds five seconds on each `slow_down` (RFC 8628 §3.5), stops on a
refusal, and PKCE's challenge is the S256 of its verifier (RFC 7636 appendix B)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from polycloud import openid


class TokenEndpoint:
    """Answers each poll with the next of `answers` (status, body), and keeps the forms it got."""

    def __init__(self, answers: list[tuple[int, dict[str, Any]]]) -> None:
        self.answers = list(answers)
        self.forms: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                form = parse_qs(self.rfile.read(length).decode())
                outer.forms.append({k: v[0] for k, v in form.items()})
                status, body = outer.answers.pop(0)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.document = {"token_endpoint": f"http://127.0.0.1:{self.server.server_address[1]}/token"}
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[TokenEndpoint]:
    served = TokenEndpoint(request.param)
    yield served
    served.server.shutdown()
    served.server.server_close()


GRANT = openid.DeviceGrant("dc-1", "ABCD-EFGH", "https://idp/device", None, expires_in=600, interval=2)
PENDING = (400, {"error": "authorization_pending"})
SLOW = (400, {"error": "slow_down"})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("endpoint", [[PENDING, SLOW, PENDING, (200, {"id_token": "t"})]], indirect=True)
def test_polling_honours_interval_and_slow_down(endpoint: TokenEndpoint) -> None:
    clock = Clock()
    tokens = openid.poll_device(endpoint.document, "cli", GRANT, clock.sleep, lambda: clock.now)
    assert tokens == {"id_token": "t"}
    assert clock.slept == [2, 2, 7, 7]
    assert all(
        f == {"grant_type": openid.DEVICE_GRANT, "device_code": "dc-1", "client_id": "cli"}
        for f in endpoint.forms
    )


@pytest.mark.parametrize("endpoint", [[PENDING, (400, {"error": "access_denied"})]], indirect=True)
def test_a_refusal_ends_the_polling(endpoint: TokenEndpoint) -> None:
    clock = Clock()
    with pytest.raises(openid.OpenIdError, match="access_denied"):
        openid.poll_device(endpoint.document, "cli", GRANT, clock.sleep, lambda: clock.now)


@pytest.mark.parametrize("endpoint", [[PENDING] * 400], indirect=True)
def test_an_expired_code_ends_the_polling(endpoint: TokenEndpoint) -> None:
    clock = Clock()
    with pytest.raises(openid.OpenIdError, match="expired"):
        openid.poll_device(endpoint.document, "cli", GRANT, clock.sleep, lambda: clock.now)
    assert sum(clock.slept) >= GRANT.expires_in


def test_pkce_challenge_is_s256_of_the_verifier() -> None:
    flow = openid.Pkce("s", "n", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert flow.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

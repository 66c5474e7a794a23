"""The `Host` check: requests addressed to a name the API is not configured for get 400 (DNS rebinding)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from polycloud.api.app import create_app
from polycloud.api.hosts import allowed_hosts, host_allowed, normal
from polycloud.settings import Settings

from .conftest import Governed


def test_an_unknown_host_is_refused_before_anything_else(governed: Governed) -> None:
    admin = governed.token("admin")
    refused = governed.client.get("/api/v1/status", headers={**admin, "host": "attacker.example:8700"})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "host 'attacker.example:8700' is not one this API answers to (see POLYCLOUD_API_HOSTS)"
    }
    assert governed.client.get("/", headers={"host": "attacker.example"}).status_code == 400  # the dashboard
    assert governed.client.get("/api/v1/status", headers={**admin, "host": ""}).status_code == 400


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:8700", "127.0.0.1:8700", "[::1]:8700", "localhost."]
)
def test_loopback_names_are_accepted(governed: Governed, host: str) -> None:
    answer = governed.client.get("/api/v1/status", headers={**governed.token("viewer"), "host": host})
    assert answer.status_code == 200


def test_the_health_check_answers_any_host(governed: Governed) -> None:
    answer = governed.client.get("/api/v1/health", headers={"host": "10.1.2.3:8700"})
    assert answer.status_code == 200


def test_the_apps_hosts_are_what_it_is_given(governed: Governed) -> None:
    app = create_app(governed.client.app.state.ctx, allowed_hosts={"polycloud.example.com"})  # type: ignore[attr-defined]
    client = TestClient(app, base_url="http://polycloud.example.com")
    assert client.get("/api/v1/status", headers=governed.token("viewer")).status_code == 200
    local = client.get("/api/v1/status", headers={**governed.token("viewer"), "host": "localhost"})
    assert local.status_code == 400


def test_allowed_hosts_of_a_server() -> None:
    named = allowed_hosts("10.0.0.11", ["api.example.com", "*.internal.example"])
    assert {"localhost", "127.0.0.1", "::1", "10.0.0.11", "api.example.com"} <= named
    assert host_allowed("API.example.com:443", named)
    assert host_allowed("eu.internal.example", named) and not host_allowed("internal.example.evil", named)
    assert not host_allowed("192.168.1.9", named)
    everywhere = allowed_hosts("0.0.0.0")
    assert "127.0.0.1" in everywhere and len(everywhere) > len(named) - 2  # every local address
    assert host_allowed("anything", allowed_hosts("127.0.0.1", ["*"]))


def test_hosts_are_compared_without_port_brackets_case_or_final_dot() -> None:
    assert [normal(h) for h in ("[::1]:8700", "::1", "Example.COM.:80", "host")] == [
        "::1",
        "::1",
        "example.com",
        "host",
    ]


def test_settings_add_polycloud_api_hosts_and_the_servers_host() -> None:
    settings = Settings(api_hosts="a.example, b.example", server="https://cp.example.com:8700")
    assert settings.extra_api_hosts == ("a.example", "b.example", "cp.example.com")
    assert Settings(api_hosts="", server=None).extra_api_hosts == ()

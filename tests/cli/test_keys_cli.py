"""`polycloud key create` and `key list` with token limits, against a stand-in for the API client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from polycloud.cli import keys as keys_cli
from polycloud.cli.main import app

LISTED = [
    {
        "id": 3,
        "service": "chat",
        "name": "partner",
        "prefix": "pk_abcdefg",
        "rps": 50.0,
        "burst": 100,
        "monthlyQuota": None,
        "usedThisMonth": 12,
        "tokensPerMinute": 60000,
        "monthlyTokens": 50_000_000,
        "tokensThisMonth": 123_456,
        "createdAt": "2026-12-01T00:00:00+00:00",
        "revoked": False,
    }
]


class FakeClient:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create_key(self, service: str, **limits: Any) -> dict[str, Any]:
        self.created.append({"service": service, **limits})
        return {"key": "pk_secret", "id": 3, **LISTED[0], **{k: v for k, v in limits.items() if k != "name"}}

    def keys(self, service: str | None = None) -> list[dict[str, Any]]:
        return LISTED


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()
    monkeypatch.setattr(keys_cli, "connect", lambda *args, **kwargs: fake)
    return fake


def run(*args: str) -> tuple[str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def test_create_sends_the_token_limits_and_says_them(client: FakeClient) -> None:
    stdout, stderr = run(
        "key", "create", "chat", "--tokens-per-minute", "60000", "--monthly-tokens", "50000000"
    )
    assert client.created == [
        {
            "service": "chat",
            "name": "default",
            "rps": 50.0,
            "burst": 100,
            "monthlyQuota": None,
            "tokensPerMinute": 60000,
            "monthlyTokens": 50_000_000,
        }
    ]
    assert "60000 tokens/minute" in stderr and "50000000 tokens/month" in stderr
    assert stdout.strip() == "pk_secret"


def test_create_without_token_limits_sends_none(client: FakeClient) -> None:
    run("key", "create", "chat", "--rps", "5")
    assert client.created[0]["tokensPerMinute"] is None and client.created[0]["monthlyTokens"] is None


def test_list_shows_the_months_tokens_in_the_table_and_the_json(client: FakeClient) -> None:
    table, _ = run("key", "list")
    assert "123456 / 50000000" in table and "60000" in table and "12 / -" in table
    listed, _ = run("key", "list", "--json")
    assert json.loads(listed)[0]["tokensThisMonth"] == 123_456

"""`polycloud token ...` and `polycloud audit ...` against a real API server (uvicorn in a thread).

The CLI finds the server through `POLYCLOUD_SERVER` and authenticates with `POLYCLOUD_TOKEN`, as it would
against a remote control plane.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from typer.testing import CliRunner, Result

from polycloud.api.app import create_app
from polycloud.catalog import load_catalog
from polycloud.cli.main import app
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.inspecting import Endpoints
from polycloud.state import Store


@dataclass
class Server:
    url: str
    store: Store
    admin: str
    home: Path

    def cli(self, *args: str, token: str | None = None) -> Result:
        env = {
            "POLYCLOUD_SERVER": self.url,
            "POLYCLOUD_TOKEN": token or self.admin,
            "POLYCLOUD_HOME": str(self.home),
        }
        return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    context = ApiContext(
        store=store,
        fleet=FleetService(store, load_catalog()),
        endpoints=Endpoints("http://api", "http://gw"),
        wake=lambda: None,
        shutdown=lambda: None,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(context), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    admin, _ = store.create_token(name="root", role="admin", project=None, expires_at=None)
    yield Server(f"http://127.0.0.1:{port}", store, admin, tmp_path / "home")
    uv.should_exit = True
    thread.join(10)
    store.close()


def test_token_create_prints_the_secret_once_and_it_works(server: Server) -> None:
    made = server.cli("token", "create", "--role", "viewer", "--project", "risk", "--expires", "30d")
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("pc_") and "\n" not in secret
    assert "viewer of project risk" in made.stderr and "shown only now" in made.stderr
    status = httpx.get(f"{server.url}/api/v1/status", headers={"authorization": f"Bearer {secret}"})
    assert status.status_code == 200

    listed = server.cli("token", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(t["name"], t["project"], t["state"]) for t in rows] == [
        ("root", None, "active"),
        ("viewer-risk", "risk", "active"),
    ]
    assert secret not in listed.stdout
    table = server.cli("token", "list")
    assert "viewer-risk" in table.stdout and "risk" in table.stdout

    revoked = server.cli("token", "revoke", str(rows[1]["id"]))
    assert revoked.exit_code == 0 and "revoked token 2 (viewer-risk)" in revoked.stdout
    assert (
        httpx.get(f"{server.url}/api/v1/status", headers={"authorization": f"Bearer {secret}"}).status_code
        == 401
    )
    assert json.loads(server.cli("token", "list", "--json").stdout)[1]["state"] == "revoked"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["token", "create", "--role", "root"], "'viewer', 'deployer' or 'admin'"),
        (["token", "create", "--role", "viewer", "--expires", "tomorrow"], "90m, 12h, 30d or 8w"),
        (["token", "revoke", "42"], "no token with id 42"),
    ],
)
def test_bad_token_commands_say_why_without_a_traceback(server: Server, args: list[str], words: str) -> None:
    result = server.cli(*args)
    assert result.exit_code == 1 and words in result.stderr and "Traceback" not in result.output


def test_a_viewer_may_not_manage_tokens(server: Server) -> None:
    viewer, _ = server.store.create_token(name="v", role="viewer", project=None, expires_at=None)
    result = server.cli("token", "list", token=viewer)
    assert result.exit_code == 1 and "not allowed (403)" in result.stderr


def test_audit_log_shows_changes_and_verify_finds_tampering(server: Server) -> None:
    server.cli("token", "create", "--role", "deployer", "--name", "ci")
    server.cli("token", "list", token="pc_wrong")
    entries = json.loads(server.cli("audit", "log", "--json").stdout)
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("auth.failed", "denied"),
        ("token.create", "ok"),
    ]
    text_log = server.cli("audit", "log").stdout.splitlines()
    assert "token.create" in text_log[0] and "root#1" in text_log[0] and "auth.failed" in text_log[1]

    intact = server.cli("audit", "verify")
    assert intact.exit_code == 0 and "audit trail intact: 2 entries" in intact.stdout
    with server.store.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'someone#9' WHERE seq = 1"))
    tampered = server.cli("audit", "verify")
    assert tampered.exit_code == 1 and "entry 1 edited" in tampered.stderr
    verdict = json.loads(server.cli("audit", "verify", "--json").stdout)
    assert verdict["broken"] == {"seq": 1, "kind": "edited", "reason": "entry 1 does not match its hash"}


def test_server_and_token_options_reach_a_remote_control_plane(server: Server, tmp_path: Path) -> None:
    elsewhere = {"POLYCLOUD_HOME": str(tmp_path / "no-home"), "POLYCLOUD_SERVER": "", "POLYCLOUD_TOKEN": ""}
    args = ["--server", server.url, "--token", server.admin, "status", "--json"]
    result = CliRunner().invoke(app, args, env=elsewhere)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["api"]["url"] == "http://api"
    refused = CliRunner().invoke(app, ["--server", server.url, "--token", "nope", "status"], env=elsewhere)
    assert refused.exit_code == 1 and "token" in refused.output, refused.output

"""`polycloud login` and `logout` where they cannot sign in: plain reasons, never a traceback, and
credentials kept 0600 and refreshed (tests/e2e/test_sso_e2e.py signs in against a real provider)."""

from __future__ import annotations

import json
import socket
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from polycloud.cli.main import app
from polycloud.client import sso


def run(tmp_path: Path, *args: str) -> Result:
    env = {"POLYCLOUD_HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return CliRunner().invoke(app, list(args), env=env)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_login_needs_a_server(tmp_path: Path) -> None:
    done = run(tmp_path, "login")
    assert done.exit_code == 1 and "polycloud login --server URL" in done.output
    assert "Traceback" not in done.output


def test_login_to_an_unreachable_control_plane_says_so(tmp_path: Path) -> None:
    done = run(tmp_path, "login", "--server", f"http://127.0.0.1:{closed_port()}")
    assert done.exit_code == 1 and "cannot be reached" in done.output and "Traceback" not in done.output


def test_logout_forgets_the_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    server = "https://polycloud.example.com:8700"
    kept = sso.Credentials(server, "https://idp", "pc", "h.p.s", None, time.time() + 3600)
    path = sso.save(kept)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["id_token"] == "h.p.s"
    assert sso.token_for(server) == "h.p.s"
    assert run(tmp_path, "logout", "--server", server).output.startswith("signed out")
    assert sso.token_for(server) is None
    assert run(tmp_path, "logout", "--server", server).output.startswith("not signed in")


def test_an_expiring_sign_in_without_a_refresh_token_asks_to_log_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    server = "https://polycloud.example.com:8700"
    sso.save(sso.Credentials(server, "https://idp", "pc", "h.p.s", None, time.time() + 10))
    with pytest.raises(sso.UserError, match="run polycloud login --server"):
        sso.token_for(server)

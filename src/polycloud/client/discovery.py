"""Find the control plane of a home — or start one in the background, as `apply` does by default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from polycloud.client.http import ApiClient
from polycloud.errors import TransientError, UserError
from polycloud.homefiles import RunInfo, ensure_home, private_open, read_any_runinfo, read_runinfo, read_token
from polycloud.settings import Settings

START_TIMEOUT_S = 45.0


def token_for(settings: Settings) -> str | None:
    """POLYCLOUD_TOKEN (or `--token`), else this user's sign-in to `--server` (`polycloud login`), else
    the home's admin token."""
    if settings.token:
        return settings.token
    if settings.server:
        from polycloud.client import sso

        signed_in = sso.token_for(settings.server)
        if signed_in is not None:
            return signed_in
    return read_token(settings.resolved_home)


def _client(settings: Settings, url: str) -> ApiClient:
    """A client of the control plane at `url`, as this invocation's settings say to call it."""
    return ApiClient(url, token_for(settings), trust=settings.tls_cert, project=settings.project)


def find(settings: Settings) -> ApiClient | None:
    """A client of the running control plane (remote with `--server`), or None when none answers."""
    if settings.server:
        return _client(settings, settings.server)
    info = read_any_runinfo(settings.resolved_home)
    if info is None:
        return None
    client = _client(settings, info.api_url)
    if client.health():
        return client
    client.close()
    return None


def connect(settings: Settings, *, start: bool, say: Callable[[str], None]) -> ApiClient:
    """A client of the control plane; with `start`, launch the embedded one when none runs."""
    if not start and not settings.server:
        info = read_any_runinfo(settings.resolved_home)
        if info is None:
            raise TransientError(
                f"no control plane runs for {settings.resolved_home}; start one with `polycloud up`"
            )
        # No /health round trip first (~25 ms of every `status`): a control plane whose process runs but
        # whose API does not answer fails the command's own request with a clear "not reachable".
        return _client(settings, info.api_url)
    client = find(settings)
    if client is not None:
        return client
    if settings.server:
        raise TransientError(f"control plane at {settings.server} is not reachable")
    if not start:
        raise TransientError(
            f"no control plane runs for {settings.resolved_home}; start one with `polycloud up`"
        )
    info = start_background(settings)
    say(
        f"started the control plane in the background (pid {info.pid}, API {info.api_url}, "
        f"gateway {info.gateway_url}); stop it with `polycloud down`"
    )
    return _client(settings, info.api_url)


def _last_error(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error:")]
    return errors[-1] if errors else (lines[-1] if lines else "no output")


def start_background(settings: Settings) -> RunInfo:
    """Spawn `polycloud up` detached from this terminal and wait until its API answers."""
    home = settings.resolved_home
    (ensure_home(home) / "logs").mkdir(mode=0o700, exist_ok=True)
    log = home / "logs" / "control-plane.log"
    with os.fdopen(private_open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "polycloud.cli.main", "up"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_runinfo(home)
        if (
            info is not None
            and info.pid == proc.pid
            and ApiClient(info.api_url, None, trust=settings.tls_cert).health()
        ):
            return info
        if proc.poll() is not None:
            raise UserError(f"the control plane could not start: {_last_error(log)} (log: {log})")
        time.sleep(0.1)
    raise TransientError(f"the control plane did not answer within {START_TIMEOUT_S:.0f} s; see {log}")

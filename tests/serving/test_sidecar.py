"""The sidecar in front of a server polycloud did not write (`--runtime-command`), as real processes:
not ready until the server's readiness path answers, requests relayed, faults injected in front of it,
the server's exit ends the sidecar (status 3), and the server dies with the sidecar even on SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from tests.support import wait_until

from polycloud.serving.sidecar import substitute

DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A sidecar running `python -m http.server` (a server polycloud did not write) as its runtime."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "hello.txt").write_text("hi from the runtime")
    port = free_port()
    runtime = [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        str(tmp_path / "site"),
        "${PORT}",
    ]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polycloud.serving",
            "--name",
            "static",
            "--port",
            str(port),
            "--protocol",
            "openai",
            "--runtime-command",
            json.dumps(runtime),
            "--readiness-path",
            "/hello.txt",
        ],
        stdout=(tmp_path / "sidecar.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    yield proc, f"http://127.0.0.1:{port}"
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=DEADLINE_S)


def status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2.0, trust_env=False).status_code
    except httpx.HTTPError:
        return None


def child_of(pid: int) -> psutil.Process:
    children = psutil.Process(pid).children()
    assert len(children) == 1, children
    return children[0]


def test_ready_once_the_runtime_answers_and_requests_are_relayed(
    sidecar: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = sidecar
    wait_until(
        lambda: status(f"{url}/v2/health/ready") == 200, what="the sidecar ready", timeout_s=DEADLINE_S
    )
    answer = httpx.get(f"{url}/hello.txt", trust_env=False)
    assert answer.status_code == 200 and answer.text == "hi from the runtime"
    assert httpx.get(f"{url}/missing", trust_env=False).status_code == 404  # the runtime's own answer
    child = child_of(proc.pid)
    assert any(c.laddr.ip == "127.0.0.1" for c in child.net_connections(kind="tcp") if c.status == "LISTEN")


def test_faults_apply_in_front_of_the_runtime(sidecar: tuple[subprocess.Popen[bytes], str]) -> None:
    _, url = sidecar
    wait_until(
        lambda: status(f"{url}/v2/health/ready") == 200, what="the sidecar ready", timeout_s=DEADLINE_S
    )
    assert httpx.post(f"{url}/_polycloud/faults", json={"errorRate": 1.0}, trust_env=False).status_code == 200
    injected = httpx.post(f"{url}/v1/chat/completions", json={}, trust_env=False)
    assert injected.status_code == 500 and "injected fault" in injected.json()["error"]
    assert status(f"{url}/hello.txt") == 200  # not inference: not failed


def test_the_runtime_exiting_ends_the_sidecar_with_status_3(
    sidecar: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = sidecar
    wait_until(
        lambda: status(f"{url}/v2/health/ready") == 200, what="the sidecar ready", timeout_s=DEADLINE_S
    )
    child_of(proc.pid).kill()
    assert proc.wait(timeout=DEADLINE_S) == 3


def test_the_runtime_dies_with_the_sidecar_even_on_sigkill(
    sidecar: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = sidecar
    wait_until(
        lambda: status(f"{url}/v2/health/ready") == 200, what="the sidecar ready", timeout_s=DEADLINE_S
    )
    child = child_of(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=DEADLINE_S)
    wait_until(
        lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
        what="the runtime gone",
        timeout_s=DEADLINE_S,
    )


def test_a_graceful_stop_stops_the_runtime(sidecar: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, url = sidecar
    wait_until(
        lambda: status(f"{url}/v2/health/ready") == 200, what="the sidecar ready", timeout_s=DEADLINE_S
    )
    child = child_of(proc.pid)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE_S) == 0
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert time.monotonic() - started < DEADLINE_S


def test_an_unstartable_runtime_fails_the_replica(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "polycloud.serving",
            "--name",
            "x",
            "--port",
            str(port),
            "--runtime-command",
            json.dumps(["/no/such/server"]),
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert (
        done.returncode == 2
        and "cannot start the runtime command" in done.stderr
        and "Traceback" not in done.stderr
    )


def test_placeholders_are_substituted() -> None:
    assert substitute(["serve", "--port=${PORT}", "${MODEL}"], 9, "/m") == ["serve", "--port=9", "/m"]

"""The plain-HTTP health port: liveness and readiness for probes without a client certificate, and
nothing else — in-process, and on a real replica process that serves mutual TLS beside it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support import wait_until

from polycloud.pki import authority as ca
from polycloud.pki import identities
from polycloud.pki.contexts import TlsFiles, client_context
from polycloud.serving.app import Replica, create_health_app
from polycloud.serving.cli import parse_options

DEADLINE_S = 60.0


def health_get(replica: Replica, method: str, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_health_app(replica))
        async with httpx.AsyncClient(transport=transport, base_url="http://health") as client:
            return await client.request(method, path)

    return asyncio.run(call())


def test_the_health_app_answers_liveness_and_readiness_only(replica: Replica) -> None:
    assert health_get(replica, "GET", "/v2/health/live").status_code == 200
    ready = health_get(replica, "GET", "/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    replica.ready = False  # draining
    assert health_get(replica, "GET", "/v2/health/ready").status_code == 503
    assert health_get(replica, "GET", "/v2/health/live").status_code == 200
    for method, path in [
        ("POST", "/v2/models/species/infer"),
        ("GET", "/v2/models/species"),
        ("GET", "/v2/models/species/ready"),
        ("GET", "/v2"),
        ("GET", "/metrics"),
        ("GET", "/_polycloud/faults"),
        ("POST", "/_polycloud/faults"),
        ("GET", "/_polycloud/predictions"),
        ("GET", "/v2/health/live/x"),
    ]:
        answer = health_get(replica, method, path)
        assert answer.status_code == 404 and "error" in answer.json(), (method, path)
    wrong = health_get(replica, "POST", "/v2/health/ready")
    assert wrong.status_code == 405 and set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_the_flag_parses() -> None:
    options = parse_options(["--model", "m.onnx", "--name", "fraud", "--health-port", "8001"])
    assert options.health_port == 8001
    assert parse_options(["--model", "m.onnx", "--name", "fraud"]).health_port is None


def test_a_health_port_that_cannot_be_bound_refuses_to_start(iris_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        command = [sys.executable, "-m", "polycloud.serving", "--model", str(iris_path), "--name", "s"]
        command += ["--port", "0", "--health-port", port]
        result = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[TlsFiles, ssl.SSLContext]:
    """A replica's certificate files for 127.0.0.1, and a gateway's client context, from one CA."""
    authority = ca.new_authority()
    bundle = authority.certificate_pem()
    identity = identities.replica(None, "species", "k8s")
    served = ca.issue_with_key(authority, identity, hosts=["127.0.0.1"], serve=True)
    replica = TlsFiles(tmp_path / "replica")
    replica.write(served.certificate_pem, served.key_pem, bundle)
    calling = ca.issue_with_key(authority, identities.gateway("g"), call=True)
    gateway = TlsFiles(tmp_path / "gateway")
    gateway.write(calling.certificate_pem, calling.key_pem, bundle)
    return replica, client_context(gateway)


@pytest.fixture
def process() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=DEADLINE_S)


def events(out: Path) -> list[dict[str, Any]]:
    lines = out.read_text().splitlines() if out.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.e2e
def test_an_mtls_replica_answers_probes_in_plain_http_on_its_health_port_and_nothing_else(
    iris_path: Path,
    tmp_path: Path,
    fleet: tuple[TlsFiles, ssl.SSLContext],
    process: list[subprocess.Popen[bytes]],
) -> None:
    files, gateway = fleet
    out = tmp_path / "out.log"
    command = [sys.executable, "-m", "polycloud.serving", "--model", str(iris_path), "--name", "species"]
    command += ["--port", "0", "--tls-dir", str(files.folder), "--health-port", "0"]
    with out.open("wb") as stdout, (tmp_path / "err.log").open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr)
    process.append(proc)
    ready = wait_until(
        lambda: next((e for e in events(out) if e["event"] == "ready"), None), DEADLINE_S, "ready"
    )
    main, health = ready["endpoint"], ready["health"]
    assert main.startswith("https://127.0.0.1:") and health.startswith("http://127.0.0.1:")

    assert httpx.get(f"{health}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert httpx.get(f"{health}/v2/health/live", timeout=5).status_code == 200
    request = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]
    }
    assert httpx.post(f"{health}/v2/models/species/infer", json=request, timeout=5).status_code == 404
    assert httpx.get(f"{health}/metrics", timeout=5).status_code == 404
    assert httpx.post(f"{health}/_polycloud/faults", json={"delayMs": 5}, timeout=5).status_code == 404
    with pytest.raises(httpx.HTTPError):  # the main port still demands a client certificate
        httpx.get(f"{main.replace('https', 'http')}/v2/health/ready", timeout=5)
    with httpx.Client(verify=gateway, timeout=DEADLINE_S) as client:
        answer = client.post(f"{main}/v2/models/species/infer", json=request)
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [2]

    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE_S) == 0
    assert [e["event"] for e in events(out) if e["event"] != "request"] == [
        "loading",
        "ready",
        "stopping",
        "stopped",
    ]
    assert (tmp_path / "err.log").read_text() == ""

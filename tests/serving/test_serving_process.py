"""The real `python -m polycloud.serving` process: start-up failures, and serving on an inherited socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from polycloud.serving.cli import parse_options

DEADLINE_S = 60.0
"""How long a step may take before the test gives up (a hang guard, not a timing assertion)."""


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Replica processes a test starts; any still running at teardown is killed and reaped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=DEADLINE_S)


def serve_command(model: Path, *extra: str) -> list[str]:
    """The command line of a replica serving `model` as `species`."""
    return [sys.executable, "-m", "polycloud.serving", "--model", str(model), "--name", "species", *extra]


def run_failing(command: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run a replica command that must fail to start: exit status 2 and no traceback."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=DEADLINE_S, check=False, pass_fds=pass_fds
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result


def only_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_sha256_mismatch_exits_2_with_one_line(iris_path: Path) -> None:
    result = run_failing(serve_command(iris_path, "--sha256", "ab" * 32, "--port", "0"))
    line = only_line(result.stderr)
    assert str(iris_path) in line and "sha256 mismatch" in line
    events = [json.loads(x) for x in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["loading", "failed"]


def test_missing_model_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    line = only_line(run_failing(serve_command(missing, "--port", "0")).stderr)
    assert str(missing) in line and "file not found" in line


def test_corrupt_model_exits_2_with_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    line = only_line(run_failing(serve_command(corrupt, "--port", "0")).stderr)
    assert str(corrupt) in line and "not a valid ONNX model" in line


def test_fd_that_is_not_a_socket_exits_2(iris_path: Path, tmp_path: Path) -> None:
    with (tmp_path / "plain.txt").open("w") as plain:
        fd = plain.fileno()
        result = run_failing(serve_command(iris_path, "--fd", str(fd)), pass_fds=(fd,))
    assert f"--fd {fd}: not a socket" in only_line(result.stderr)


def test_bad_flags_exit_2(iris_path: Path) -> None:
    result = run_failing(serve_command(iris_path, "--error-rate", "1.5"))
    assert "--error-rate" in result.stderr


def test_options_parse() -> None:
    argv = "--model m.onnx --name fraud --fd 5 --port 41234 --delay-ms 12.5 --error-rate 0.1"
    argv += " --replica-id fraud-a-0 --cluster a --revision 4 --spec-hash h --home /h --sha256 00"
    options = parse_options(argv.split())
    assert (options.model, options.name, options.fd, options.port) == ("m.onnx", "fraud", 5, 41234)
    assert (options.delay_ms, options.error_rate, options.revision) == (12.5, 0.1, "4")
    assert options.identity() == {
        "replica": "fraud-a-0",
        "service": "fraud",
        "cluster": "a",
        "revision": "4",
        "specHash": "h",
        "home": "/h",
    }


def wait_until(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the replica exited with {proc.returncode} while waiting for {what}")
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/v2/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def metric(base: str, name: str, **labels: str) -> float | None:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


@pytest.mark.e2e
def test_replica_serves_on_an_inherited_socket_and_drains_on_sigterm(
    iris_path: Path, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    identity = [
        "--cluster",
        "e2e",
        "--revision",
        "7",
        "--replica-id",
        "species-e2e-0",
        "--home",
        str(tmp_path),
    ]
    command = serve_command(
        iris_path, "--fd", str(listener.fileno()), "--port", str(port), "--delay-ms", "20"
    )
    with (tmp_path / "out.log").open("wb") as out, (tmp_path / "err.log").open("wb") as err:
        proc = subprocess.Popen(command + identity, pass_fds=(listener.fileno(),), stdout=out, stderr=err)
    processes.append(proc)
    listener.close()  # the replica owns the socket now
    wait_until(lambda: ready(base), "ready", proc)

    request = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]
    }
    answer = httpx.post(f"{base}/v2/models/species/infer", json=request, timeout=DEADLINE_S)
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [2]
    labels = {"service": "species", "cluster": "e2e", "revision": "7"}
    assert metric(base, "polycloud_replica_requests_total", code="200", **labels) == 1

    assert httpx.post(f"{base}/_polycloud/faults", json={"delayMs": 1500}, timeout=5).status_code == 200
    slow: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: slow.update(
            answer=httpx.post(f"{base}/v2/models/species/infer", json=request, timeout=DEADLINE_S)
        )
    )
    thread.start()
    try:
        wait_until(
            lambda: metric(base, "polycloud_replica_inflight_requests") == 1, "in-flight request", proc
        )
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        thread.join(timeout=DEADLINE_S)
    assert slow["answer"].status_code == 200
    assert slow["answer"].json()["outputs"][0]["data"] == [2]
    lines = [json.loads(line) for line in (tmp_path / "out.log").read_text().splitlines()]
    events = [line["event"] for line in lines if line["event"] != "request"]
    assert events == ["loading", "ready", "stopping", "stopped"]
    requests = [line for line in lines if line["event"] == "request"]
    assert len(requests) == 2 and all(r["status"] == 200 for r in requests)
    assert all(len(r["trace_id"]) == 32 and r["request_id"] == r["trace_id"] for r in requests)
    assert {r["replica"] for r in requests} == {identity[identity.index("--replica-id") + 1]}
    assert (tmp_path / "err.log").read_text() == ""

"""A careful attacker's requests through a real gateway to real replicas (issue 18's probe): each is
answered at once with a 4xx that is valid JSON, and none of them counts against a replica."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.support import build_model

from polycloud.state import Store

from .support import wait_until
from .test_gateway_e2e import SERVICE, Processes, declare, ready, record, start_gateway, start_replicas

pytestmark = pytest.mark.e2e

NESTED = b"[" * 100_000 + b"]" * 100_000


def _raw_request(url: str, head: bytes, timeout_s: float) -> bytes:
    """Send `head` (request line and headers, no body) and return what the server answers first."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        sock.sendall(head)
        return sock.recv(65536)


def _ejections(client: httpx.Client, url: str) -> float:
    total = 0.0
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith("polycloud_gateway_ejections_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_hostile_requests_get_4xx_and_never_eject_a_replica(tmp_path: Path, processes: Processes) -> None:
    model = build_model(tmp_path / "tiny.onnx")
    database = f"sqlite:///{tmp_path / 'state.db'}"
    replicas = start_replicas(processes, model, [("near-0", "near"), ("near-1", "near"), ("far-0", "far")])
    with Store.open(database) as store, httpx.Client(trust_env=False, timeout=30.0) as client:
        declare(store)
        store.replace_replicas([record(rid, c, url, p.pid) for rid, (c, p, url) in replicas.items()])
        _, url = start_gateway(processes, database)
        for _, _, replica_url in replicas.values():
            wait_until(ready(client, replica_url), 60, f"replica {replica_url}")
        wait_until(ready(client, url), 60, "the gateway")
        infer = f"{url}/v2/models/{SERVICE}/infer"
        headers = {"content-type": "application/json"}

        # 100,000 nested brackets: a client error on every replica, so a 400, tried once, ejecting none.
        for _ in range(20):
            answer = client.post(infer, content=NESTED, headers=headers)
            assert answer.status_code == 400, answer.text
            assert "nested too deeply" in answer.json()["error"]
            assert "x-polycloud-tried" not in answer.headers
        # NaN, Infinity and a number too large for a float: refused as inputs.
        for data in ("[NaN, 1, 2, 3]", "[Infinity, 1, 2, 3]", "[1e999, 1, 2, 3]"):
            body = '{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":' + data + "}]}"
            answer = client.post(infer, content=body.encode(), headers=headers)
            assert answer.status_code == 400, (data, answer.text)
            json.loads(answer.text)  # valid JSON, no bare NaN
        # Finite inputs whose product overflows FP32: the answer would hold infinities, so a 422.
        body = {
            "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [3e38, 3e38, 3e38, 3e38]}]
        }
        answer = client.post(infer, json=body)
        assert answer.status_code == 422, answer.text
        assert "NaN or infinite" in json.loads(answer.text)["error"]
        assert _ejections(client, url) == 0

        # A declared Content-Length of 10^12 gets its 413 at once, from the gateway and from a replica.
        path = urlsplit(infer).path
        for target in (url, replicas["far-0"][2]):
            head = (
                f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                "content-length: 1000000000000\r\n\r\n"
            ).encode()
            start = time.monotonic()
            first = _raw_request(target, head, timeout_s=10)
            assert first.startswith(b"HTTP/1.1 413"), first[:200]
            assert time.monotonic() - start < 5

        # A 100 KB request id is replaced, not echoed; a usable one is kept.
        long_id = "a" * 100_000
        good = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        answer = client.post(infer, json=good, headers={"x-request-id": long_id})
        assert answer.status_code == 200
        assert len(answer.headers["x-request-id"]) <= 128
        assert (
            client.post(infer, json=good, headers={"x-request-id": "probe-1"}).headers["x-request-id"]
            == "probe-1"
        )

        # Every replica is still in rotation.
        clusters = {client.post(infer, json=good).headers["x-polycloud-cluster"] for _ in range(30)}
        assert "near" in clusters
        assert _ejections(client, url) == 0

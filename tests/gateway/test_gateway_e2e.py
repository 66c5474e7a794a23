"""End to end: `python -m polycloud.gateway` over a SQLite state store, in front of real
`python -m polycloud.serving` replicas of a tiny ONNX model, with one cluster killed under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support import build_model

from polycloud.state import DocumentInput, ReplicaRecord, Store, WorkloadInput, content_hash

from .support import bind, wait_until

pytestmark = pytest.mark.e2e

SERVICE = "tiny"
GOOD = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
BAD = {"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}


class Processes:
    """Child processes started on pre-bound sockets; all are killed at the end of the test."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
        """Start `python -m ...args --fd N` on a fresh port of 127.0.0.1; returns it and its URL."""
        sock = bind()
        port = sock.getsockname()[1]
        log = (self.logs / f"{name}.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", *args, "--fd", str(sock.fileno())],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=[sock.fileno()],
            env=env,
        )
        sock.close()
        log.close()
        self.children.append(proc)
        return proc, f"http://127.0.0.1:{port}"

    def kill_all(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def ready(client: httpx.Client, url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return client.get(f"{url}/v2/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    return check


def record(rid: str, cluster: str, endpoint: str, pid: int) -> ReplicaRecord:
    return ReplicaRecord(
        id=rid,
        workload=SERVICE,
        cluster=cluster,
        role="active",
        revision=1,
        endpoint=endpoint,
        pid=pid,
        state="ready",
    )


def declare(store: Store) -> None:
    spec: dict[str, Any] = {
        "kind": "Service",
        "metadata": {"name": SERVICE},
        "spec": {"pattern": "active-active"},
    }
    clusters = {"near": ("aws", "us-east-1"), "far": ("gcp", "europe-west4")}
    documents = []
    for name, (provider, region) in clusters.items():
        doc = {
            "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {"provider": provider, "region": region},
        }
        documents.append(DocumentInput(kind="Cluster", name=name, spec=doc, content_hash=content_hash(doc)))
    workload = WorkloadInput(
        name=SERVICE, kind="Service", spec=spec, content_hash=content_hash(spec), placement=[]
    )
    store.apply(workloads=[workload], documents=documents, author="test", message="e2e")


def start_replicas(
    processes: Processes, model: Path, layout: list[tuple[str, str]]
) -> dict[str, tuple[str, subprocess.Popen[bytes], str]]:
    """Real replicas of `model`, one per (replica id, cluster): id -> (cluster, process, URL)."""
    replicas = {}
    for rid, cluster in layout:
        args = ["polycloud.serving", "--model", str(model), "--name", SERVICE, "--cluster", cluster]
        replicas[rid] = (cluster, *processes.start(rid, [*args, "--replica-id", rid]))
    return replicas


def start_gateway(processes: Processes, database: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m polycloud.gateway` over `database`, in region aws/us-east-1."""
    args = ["polycloud.gateway", "--addr", "127.0.0.1:0", "--database-url", database]
    return processes.start("gateway", [*args, "--region", "aws/us-east-1", *extra])


def test_gateway_process_over_real_replicas_survives_a_cluster_kill(
    tmp_path: Path, processes: Processes
) -> None:
    model = build_model(tmp_path / "tiny.onnx")
    database = f"sqlite:///{tmp_path / 'state.db'}"
    layout = [("near-0", "near"), ("near-1", "near"), ("far-0", "far"), ("far-1", "far")]
    replicas = start_replicas(processes, model, layout)
    with Store.open(database) as store, httpx.Client(trust_env=False, timeout=30.0) as client:
        declare(store)
        store.replace_replicas([record(rid, c, url, p.pid) for rid, (c, p, url) in replicas.items()])
        gateway, url = start_gateway(processes, database, "--health-interval", "0.2")
        for _, _, replica_url in replicas.values():
            wait_until(ready(client, replica_url), 60, f"replica {replica_url}")
        wait_until(ready(client, url), 60, "the gateway")
        infer = f"{url}/v2/models/{SERVICE}/infer"

        answer = client.post(infer, json=GOOD, headers={"x-request-id": "e2e-1"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [4.0, 6.0]
        assert answer.headers["x-polycloud-cluster"] == "near"
        assert answer.headers["x-request-id"] == "e2e-1"
        metadata = client.get(f"{url}/v2/models/{SERVICE}").json()
        assert [i["name"] for i in metadata["inputs"]] == ["X"]

        bad = client.post(infer, json=BAD)
        assert bad.status_code == 400
        assert "X" in bad.json()["error"]

        # 240 requests from 4 clients; the near cluster is SIGKILLed after the 60th answer.
        served: list[str] = []

        def one(i: int) -> int:
            reply = client.post(infer, json=GOOD)
            served.append(reply.headers.get("x-polycloud-cluster", ""))
            return reply.status_code

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(one, i) for i in range(240)]
            wait_until(lambda: len(served) >= 60, 60, "60 answers")
            for cluster, proc, _ in replicas.values():
                if cluster == "near":
                    proc.send_signal(signal.SIGKILL)
            statuses = Counter(future.result() for future in futures)
        assert statuses == {200: 240}
        assert served[-60:] == ["far"] * 60

        # The control plane replaces the dead cluster's replicas: the gateway follows the store.
        proc, new_url = processes.start(
            "near-2", ["polycloud.serving", "--model", str(model), "--name", SERVICE, "--cluster", "near"]
        )
        wait_until(ready(client, new_url), 60, "the new replica")
        survivors = [record(rid, c, u, p.pid) for rid, (c, p, u) in replicas.items() if c == "far"]
        store.replace_replicas([*survivors, record("near-2", "near", new_url, proc.pid)])
        wait_until(
            lambda: client.post(infer, json=GOOD).headers.get("x-polycloud-cluster") == "near",
            30,
            "the new route",
        )

        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=30) == 0


def test_gateway_process_refuses_bad_arguments(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'state.db'}"
    for args in (["--addr", "nonsense"], ["--region", "us-east-1"], ["--fd", "987"]):
        done = subprocess.run(
            [sys.executable, "-m", "polycloud.gateway", "--database-url", database, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.splitlines()[-1].startswith("polycloud gateway: "), done.stderr

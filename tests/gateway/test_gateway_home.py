"""`python -m polycloud.gateway --home` as a process: statically stable without its store.

A gateway restarted while the database does not answer serves at once from its on-disk copy (routes and
inference keys); with a reachable store it saves that copy, heartbeats into the members, and on SIGTERM
leaves them and removes its run file; a second gateway for the same home is refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support import wait_until

from polycloud.exchange import KeyGrant
from polycloud.gateway.keys import hash_key, utc_month
from polycloud.gateway.routes import ServiceRoutes
from polycloud.gateway.snapshot import SavedKeys, SavedRoutes, saved_keys, saved_routes
from polycloud.state import ReplicaRecord, Store, WorkloadInput, content_hash

from .support import INFER_BODY, MakeStub, ServerThread, Stub, StubReplica, bind, replica, table

pytestmark = pytest.mark.e2e

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/x"
"""A database URL nothing answers (connection refused)."""


def free_port() -> int:
    with bind() as sock:
        return int(sock.getsockname()[1])


class Gateways:
    """`python -m polycloud.gateway` processes; every one still running is killed at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, home: Path, database_url: str, port: int, name: str = "gateway"
    ) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "polycloud.gateway",
                    "--addr",
                    f"127.0.0.1:{port}",
                    "--database-url",
                    database_url,
                    "--home",
                    str(home),
                    "--health-interval",
                    "0.2",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.procs.append(proc)
        return proc

    def log(self, name: str = "gateway") -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    running = Gateways(tmp_path)
    yield running
    running.kill_all()


@pytest.fixture
def stub() -> Iterator[Stub]:
    app = StubReplica("east")
    served = Stub(app, ServerThread(app).start())
    yield served
    served.stop(force=True)


def first_answer(client: httpx.Client, url: str, deadline_s: float, **kwargs: object) -> httpx.Response:
    """The first answer of a POST to `url` that is not a connection error, polled until `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return client.post(url, json=INFER_BODY, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_a_restarted_gateway_serves_at_once_from_its_copy_while_the_store_is_down(
    tmp_path: Path, gateways: Gateways, make_stub: MakeStub
) -> None:
    home = tmp_path / "home"
    open_stub, closed_stub = make_stub("east"), make_stub("east", "closed")
    routes = table(
        [replica(open_stub.server, "east")],
        others=[ServiceRoutes("closed", "single", (replica(closed_stub.server, "east"),))],
    )
    saved_routes(home).save(SavedRoutes.of(routes))
    key = "k-0123456789"
    saved_keys(home).save(SavedKeys([KeyGrant(1, "closed", hash_key(key), 100.0, 100, None, 0, utc_month())]))
    port = free_port()
    started = time.monotonic()
    proc = gateways.start(home, UNREACHABLE, port)
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        answer = first_answer(client, f"http://127.0.0.1:{port}/v2/models/m/infer", 60)
        cold_start_ms = (time.monotonic() - started) * 1000
        print(f"gateway cold start from its on-disk copy, store unreachable: {cold_start_ms:.0f} ms")
        assert answer.status_code == 200, (answer.text, gateways.log())
        assert answer.headers["x-polycloud-cluster"] == "east"
        assert client.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
        closed_url = f"http://127.0.0.1:{port}/v2/models/closed/infer"
        assert client.post(closed_url, json=INFER_BODY).status_code == 401  # the saved keys hold
        with_key = client.post(closed_url, json=INFER_BODY, headers={"authorization": f"Bearer {key}"})
        assert with_key.status_code == 200, with_key.text
        for _ in range(20):  # and keep holding while the store stays unreachable
            assert (
                client.post(f"http://127.0.0.1:{port}/v2/models/m/infer", json=INFER_BODY).status_code == 200
            )
            time.sleep(0.05)
    run_file = json.loads((home / "gateway.json").read_text())
    assert run_file["pid"] == proc.pid and run_file["url"] == f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, gateways.log()
    assert not (home / "gateway.json").exists()


def test_a_gateway_with_a_store_saves_its_copy_joins_the_members_and_leaves(
    tmp_path: Path, gateways: Gateways, stub: Stub
) -> None:
    home = tmp_path / "home"
    database = f"sqlite:///{tmp_path / 'state.db'}"
    with Store.open(database) as store:
        spec = {"kind": "Service", "metadata": {"name": "m"}, "spec": {"pattern": "single"}}
        workload = WorkloadInput(
            name="m", kind="Service", spec=spec, content_hash=content_hash(spec), placement=[]
        )
        store.apply(workloads=[workload], documents=[], author="test", message="")
        store.replace_replicas([ReplicaRecord("m-0", "m", "east", "active", 1, stub.url, None, "ready")])
        port = free_port()
        proc = gateways.start(home, database, port)
        with httpx.Client(trust_env=False, timeout=10.0) as client:
            assert first_answer(client, f"http://127.0.0.1:{port}/v2/models/m/infer", 60).status_code == 200
        copy = wait_until(lambda: saved_routes(home).load(), what="the saved routes")
        assert [r.endpoint for r in copy[0].services[0].replicas] == [stub.url]
        members = wait_until(lambda: store.members(max_age_s=10), what="the gateway's heartbeat")
        assert [(m.role, m.url, m.pid) for m in members] == [
            ("gateway", f"http://127.0.0.1:{port}", proc.pid)
        ]
        assert members[0].id.startswith("gw-") and members[0].id.endswith(f"-{port}")

        second = gateways.start(home, database, free_port(), name="second")
        assert second.wait(timeout=60) == 1
        assert "a gateway already runs for" in gateways.log("second")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, gateways.log()
        assert store.members(max_age_s=10) == []
    assert not (home / "gateway.json").exists()

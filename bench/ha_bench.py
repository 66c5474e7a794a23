"""High-availability figures of the control plane, each over several runs (min / median / max):

- **leader failover**: two `polycloud server`s on PostgreSQL; SIGKILL the leader, time until the survivor
  holds the lease (polled every 20 ms through its API), while clients send requests through a gateway
  (every one counted). The killed server is replaced before the next run. Baseline: the lease time.
- **gateway cold start**: from spawning `polycloud gateway` to its first answered inference, (a) with
  the database up, (b) with the database unreachable, serving from the on-disk copy in its home.
- **black hole against crash**: `polycloud drill blackhole` (replicas SIGSTOPped: connections hang) and
  `polycloud drill outage` (replicas gone: connections refused) on one of two clusters of an
  active-active service under 50 req/s of open-loop load: failed requests, RTO (until no request
  touches the faulted cluster) and the client p99 while the fault lasts.

Run: `.venv/bin/python bench/ha_bench.py [--runs 10]` (needs PostgreSQL at 127.0.0.1:5432, database
`test`, trust auth).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the end-to-end harness: the same roles the HA tests run

from tests.e2e.conftest import IRIS_MODEL  # noqa: E402
from tests.e2e.fleets import Fleet, ServiceDecl  # noqa: E402
from tests.e2e.roles import Role, Roles, drop_schema, fresh_schema_url  # noqa: E402
from tests.e2e.traffic import IRIS_SAMPLE, ClientLoad  # noqa: E402

LEASE_S = 4.0


def spread(values: list[float]) -> str:
    return f"min {min(values):7.3f}  median {statistics.median(values):7.3f}  max {max(values):7.3f}"


def first_answer_s(role: Role, started: float, timeout_s: float = 60.0) -> float:
    """Seconds from `started` until the gateway answers an inference with 200."""
    body = {"inputs": [IRIS_SAMPLE]}
    deadline = started + timeout_s
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.post(f"{role.url}/v2/models/alpha/infer", json=body).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.005)
    raise RuntimeError(f"{role.name} did not answer within {timeout_s} s:\n{role.output()[-2000:]}")


def fleet_up(roles: Roles, servers: int) -> tuple[Role, dict[str, Role]]:
    """A gateway, `servers` servers and the active-active service, converged."""
    gateway = roles.start_gateway("gw-bench")
    started = {name: roles.start_server(name, gateway) for name in (f"srv-{i}" for i in range(servers))}
    for server in started.values():
        roles.wait_healthy(server, "/api/v1/health")
    roles.wait_healthy(gateway, "/v2/health/live")
    model = Path(shutil.copy(IRIS_MODEL, roles.root / "iris.onnx"))
    fleet = Fleet(roles.root, model, ("acme", "borealis"), (ServiceDecl("alpha", ("acme", "borealis"), 2),))
    applied = roles.cli("apply", fleet.write(), "--yes", server=next(iter(started.values())))
    if applied.rc != 0:
        raise RuntimeError(f"apply failed: {applied.stdout}{applied.stderr}")
    return gateway, started


def leader_failover(roles: Roles, runs: int) -> tuple[list[float], int, int]:
    gateway, servers = fleet_up(roles, 2)
    times: list[float] = []
    with ClientLoad([gateway.url], "alpha", clients=2) as load:
        for run in range(runs):
            any_server = next(s for s in servers.values() if s.alive())
            leader_id, epoch = roles.leader(any_server)
            leader = servers.pop(str(leader_id))
            survivor = next(iter(servers.values()))
            leader.popen.send_signal(signal.SIGKILL)
            leader.popen.wait()
            killed = time.monotonic()
            while roles.leader(survivor) != (survivor.name, epoch + 1):
                time.sleep(0.02)
            times.append(time.monotonic() - killed)
            print(f"  run {run + 1}: new leader after {times[-1]:.3f} s", flush=True)
            replacement = roles.start_server(f"srv-{run + 2}", gateway)
            servers[replacement.name] = replacement
            roles.wait_healthy(replacement, "/api/v1/health")
    return times, load.count(), len(load.failures())


def gateway_cold_start(roles: Roles, runs: int) -> tuple[list[float], list[float]]:
    warm = roles.by_name("gw-bench")
    with_db: list[float] = []
    from_disk: list[float] = []
    for run in range(runs):
        for label, results, url in (("database up", with_db, None), ("database down", from_disk, "down")):
            name = f"gw-cold-{run}-{len(results)}-{'down' if url else 'up'}"
            home = (roles.root / f"home-{name}").resolve()
            if url:  # start from a copy of a running gateway's saved routes, the database unreachable
                shutil.copytree(warm.home / "gateway", home / "gateway")
                saved = roles.database_url
                roles.database_url = "postgresql+psycopg://postgres@127.0.0.1:1/unreachable"
            started = time.monotonic()
            role = roles.start_gateway(name)
            if url:
                roles.database_url = saved
            results.append(first_answer_s(role, started))
            role.popen.terminate()
            role.popen.wait(30)
            print(f"  run {run + 1}, {label}: first answer after {results[-1]:.3f} s", flush=True)
    return with_db, from_disk


def all_ready(roles: Roles, server: Role, timeout_s: float = 60.0) -> None:
    """Wait until every replica is ready again (an outage drill stops them all)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = roles.status(server)
        states = [r["state"] for s in status["services"] for c in s["clusters"] for r in c["replicas"]]
        if len(states) == 4 and all(state == "ready" for state in states):
            return
        time.sleep(0.2)
    raise RuntimeError("the replicas did not all come back after a drill")


def drills(roles: Roles, runs: int) -> dict[str, list[dict[str, Any]]]:
    """Alternating black-hole and outage drills on cluster acme, through the bench's gateway."""
    server = next(r for r in roles.roles if r.name.startswith("srv-") and r.alive())
    reports: dict[str, list[dict[str, Any]]] = {"blackhole": [], "outage": []}
    for run in range(runs):
        for kind, found in reports.items():
            args = ("drill", kind, "acme", "--rps", "50", "--duration", "6", "--json")
            done = roles.cli(*args, server=server)
            if done.rc != 0:
                raise RuntimeError(f"drill {kind} failed: {done.stdout}{done.stderr}")
            found.append(json.loads(done.stdout))
            all_ready(roles, server)
            r = found[-1]
            print(
                f"  run {run + 1}, {kind}: {r['failed']} of {r['requests']} failed, rto {r['rtoMs']} ms, "
                f"p99 during the fault {r['faultP99Ms']} ms",
                flush=True,
            )
            time.sleep(2.0)  # the gateway's health checks see them again before the next drill
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--drills-only", action="store_true", help="only black hole against crash")
    args = parser.parse_args()
    url, schema = fresh_schema_url()
    root = Path(tempfile.mkdtemp(prefix="polycloud-ha-bench-"))
    roles = Roles(root, url)
    try:
        roles.init()
        if args.drills_only:
            fleet_up(roles, 1)
            print_drills(drills(roles, args.runs))
            return 0
        print(f"leader failover ({args.runs} runs, lease {LEASE_S:g} s, renewed every 1 s):", flush=True)
        failover, sent, failed = leader_failover(roles, args.runs)
        print("gateway cold start:", flush=True)
        with_db, from_disk = gateway_cold_start(roles, args.runs)
        print("black hole against crash (drills at 50 req/s):", flush=True)
        drilled = drills(roles, args.runs)
    finally:
        roles.close()
        drop_schema(schema)
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"leader failover, s             {spread(failover)}   (lease {LEASE_S:g} s)")
    print(f"  client requests during it    {sent} sent, {failed} failed")
    print(f"gateway cold start, s, db up   {spread(with_db)}")
    print(f"gateway cold start, s, db down {spread(from_disk)}   (from its on-disk copy)")
    print_drills(drilled)
    return 0


def print_drills(drilled: dict[str, list[dict[str, Any]]]) -> None:
    for kind, found in drilled.items():
        failed = sum(r["failed"] for r in found)
        sent = sum(r["requests"] for r in found)
        rto = [float(r["rtoMs"] or 0) / 1000 for r in found]
        p99 = [float(r["faultP99Ms"] or 0) / 1000 for r in found]
        print(f"{kind:9} RTO, s              {spread(rto)}   ({failed} of {sent} requests failed)")
        print(f"{kind:9} client p99, s       {spread(p99)}   (while the fault lasts)")


if __name__ == "__main__":
    sys.exit(main())

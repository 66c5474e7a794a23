"""Gateway benchmark: added latency, throughput beside direct calls and nginx, and outage drills.

    .venv/bin/python bench/gateway_bench.py [--replicas 4] [--requests 2000] [--concurrency 16]
        [--rate 500] [--drill-rate 200] [--drills 3] [--policy locality] [--work DIR]

All on 127.0.0.1: N real replicas (`python -m polycloud.serving`, a tiny ONNX model built here) in
clusters `a` and `b`, their routes in a SQLite state store, the gateway (`python -m polycloud.gateway`),
nginx over the same replicas when Debian's nginx is installed, and an aiohttp load generator here:

1. closed loop, `--requests` at `--concurrency` (best of 3): direct (the client spreads requests over
   the replicas itself: the baseline), nginx and the gateway;
2. open loop at `--rate` (median of 3): p50/p99 direct and through the gateway, and the difference;
3. outage drills, 10 s at `--drill-rate`: cluster `a` SIGKILLed at 2 s, restarted on its ports at 4 s.
   Failed requests (anything but 200), p50/p99, p99 of requests sent in the 2 s after the kill, RTO
   (kill → the gateway's last failed attempt on `a`, from its /metrics) and recovery (restarted
   replicas ready → first answer served by `a`). `--work DIR` keeps the state store and logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import onnx
from onnx import TensorProto, helper

from polycloud.state import ReplicaRecord, Store, WorkloadInput, content_hash

uvloop: ModuleType | None
try:
    import uvloop  # a faster load generator when installed
except ImportError:
    uvloop = None

SERVICE = "bench"
BODY = b'{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
HEADERS = {"content-type": "application/json"}
ROUNDS = 3
FAILED_ATTEMPTS = re.compile(
    r'^polycloud_gateway_attempts_total\{cluster="a",outcome="(?:connect|broken|timeout|5xx)",[^}]*\} (\S+)$',
    re.M,
)


def build_model(path: Path) -> Path:
    """A tiny ONNX model: Y[-1,2] = X[-1,4] @ W."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [1, 0, 0, 1, 1, 0, 0, 1])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [-1, 2])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def listener(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


def free_port() -> int:
    with listener() as sock:
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    name: str
    args: list[str]
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Fleet:
    """The child processes of the benchmark; `close` kills every one."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.children: list[Child] = []
        self.others: list[subprocess.Popen[bytes]] = []  # not restarted: nginx
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
        self.env["POLYCLOUD_HOME"] = str(work)  # traces under work/traces (OTEL_SDK_DISABLED=true: none)

    def start(self, child: Child) -> Child:
        sock = listener(child.port)
        child.port = sock.getsockname()[1]
        with (self.work / f"{child.name}.log").open("ab") as log:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", *child.args, "--fd", str(sock.fileno())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                pass_fds=[sock.fileno()], env=self.env,
            )  # fmt: skip
        sock.close()
        if child not in self.children:
            self.children.append(child)
        return child

    def close(self) -> None:
        for proc in self.others:  # nginx: SIGQUIT stops its workers too (SIGKILL would orphan them)
            proc.send_signal(signal.SIGQUIT)
            proc.wait(timeout=30)
        for proc in [c.proc for c in self.children if c.proc is not None]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def nginx_conf(work: Path, port: int, replicas: list[Child]) -> Path:
    servers = "\n".join(f"    server 127.0.0.1:{r.port};" for r in replicas)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    for kind in kinds:
        (work / kind).mkdir(exist_ok=True)
    temp = " ".join(f"{kind}_temp_path {work / kind};" for kind in kinds)
    conf = work / "nginx.conf"
    conf.write_text(
        f"worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; {temp}\n  upstream replicas {{\n{servers}\n    keepalive 64;\n  }}\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://replicas; "
        'proxy_http_version 1.1; proxy_set_header Connection ""; } }\n}\n'
    )
    return conf


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self, label: str) -> str:
        return (
            f"  {label:<24} {self.rps:8.0f} req/s   p50 {self.quantile(0.5):6.2f} ms   "
            f"p99 {self.quantile(0.99):6.2f} ms   errors {self.errors}"
        )


async def call(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            await response.read()
            return response.status, response.headers.get("x-polycloud-cluster", "")
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


async def closed_loop(session: aiohttp.ClientSession, urls: list[str], n: int, concurrency: int) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()

    async def worker() -> None:
        nonlocal errors
        while (i := next(counter)) < n:
            start = time.perf_counter()
            status, _ = await call(session, urls[i % len(urls)])
            latencies.append((time.perf_counter() - start) * 1000)
            errors += status != 200

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(n, errors, time.perf_counter() - start, latencies)


async def open_loop(
    session: aiohttp.ClientSession,
    urls: list[str],
    rate: float,
    seconds: float,
    events: list[tuple[float, str, float]] | None = None,
    begin: float | None = None,
) -> Result:
    """Send at `rate` whatever the answers' pace; `events` gets (sent at, cluster, latency ms)."""
    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter() if begin is None else begin

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        status, cluster = await call(session, urls[i % len(urls)])
        done = time.perf_counter()
        latency = (done - scheduled) * 1000
        latencies.append(latency)
        errors += status != 200
        if events is not None:
            events.append((scheduled - begin, cluster, latency))

    tasks = []
    for i in range(int(rate * seconds)):
        scheduled = begin + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return Result(len(tasks), errors, time.perf_counter() - begin, latencies)


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{url}/v2/health/ready") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise SystemExit(f"{url} did not become ready within {timeout_s:.0f} s")


async def failed_attempts_on_a(session: aiohttp.ClientSession, gateway: str) -> float:
    async with session.get(f"{gateway}/metrics") as response:
        text = await response.text()
    return sum(float(v) for v in FAILED_ATTEMPTS.findall(text))


async def drill(
    session: aiohttp.ClientSession, fleet: Fleet, gateway: str, cluster_a: list[Child], rate: float
) -> dict[str, Any]:
    """One outage drill (see the module docstring); returns its figures."""
    infer = f"{gateway}/v2/models/{SERVICE}/infer"
    events: list[tuple[float, str, float]] = []
    marks: dict[str, float] = {}
    failures: list[tuple[float, float]] = []
    seconds = 10.0
    begin = time.perf_counter()

    def now() -> float:
        return time.perf_counter() - begin

    async def inject() -> None:
        await asyncio.sleep(2.0)
        for child in cluster_a:
            if child.proc is not None:
                child.proc.send_signal(signal.SIGKILL)
        marks["kill"] = now()
        for child in cluster_a:
            if child.proc is not None:
                child.proc.wait()
        await asyncio.sleep(max(0.0, 4.0 - now()))
        for child in cluster_a:
            fleet.start(child)
        for child in cluster_a:
            await wait_ready(session, child.url)
        marks["ready"] = now()

    async def poll() -> None:
        while now() < seconds:
            failures.append((now(), await failed_attempts_on_a(session, gateway)))
            await asyncio.sleep(0.02)

    load = open_loop(session, [infer], rate, seconds, events, begin)
    result, *_ = await asyncio.gather(load, inject(), poll())
    kill, ready = marks["kill"], marks.get("ready", seconds)
    final = failures[-1][1] if failures else 0.0
    settled = next((t for t, v in failures if v >= final), kill)
    back = [t for t, cluster, _ in events if cluster == "a" and t > ready]
    outage = Result(0, 0, 1.0, [ms for t, _, ms in events if kill <= t < kill + 2.0])
    return {
        "requests": result.requests,
        "failed": result.errors,
        "p50Ms": round(result.quantile(0.5), 2),
        "p99Ms": round(result.quantile(0.99), 2),
        "p99OutageMs": round(outage.quantile(0.99), 2),
        "rtoMs": round(max(0.0, settled - kill) * 1000),
        "recoveryMs": round((min(back) - ready) * 1000) if back else None,
    }


async def throughput(
    session: aiohttp.ClientSession, targets: list[tuple[str, list[str]]], args: argparse.Namespace
) -> None:
    """Closed loop, ROUNDS rounds with the targets interleaved; the best round of each is printed."""
    print(f"\n1. closed loop: {args.requests} requests at concurrency {args.concurrency}, best of {ROUNDS}")
    best: dict[str, Result] = {}
    for _ in range(ROUNDS):
        for label, urls in targets:
            result = await closed_loop(session, urls, args.requests, args.concurrency)
            if label not in best or result.rps > best[label].rps:
                best[label] = result
    for label, _ in targets:
        print(best[label].line(label))
    if "nginx" in best:
        print(f"  gateway throughput = {best['gateway'].rps / best['nginx'].rps:.0%} of nginx's")


async def added_latency(
    session: aiohttp.ClientSession, direct: list[str], through: list[str], args: argparse.Namespace
) -> None:
    """Open loop at --rate, ROUNDS rounds interleaved; the round with the median p99 of each is printed."""
    seconds = args.requests / args.rate
    print(f"\n2. open loop at {args.rate:.0f} req/s for {seconds:.1f} s, median of {ROUNDS} rounds")
    rounds: dict[str, list[Result]] = {"direct": [], "gateway": []}
    for _ in range(ROUNDS):
        for label, urls in (("direct", direct), ("gateway", through)):
            rounds[label].append(await open_loop(session, urls, args.rate, seconds))
    median = {label: sorted(r, key=lambda x: x.quantile(0.99))[len(r) // 2] for label, r in rounds.items()}
    for label, result in median.items():
        print(result.line(label))
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        added = median["gateway"].quantile(q) - median["direct"].quantile(q)
        print(f"  added {name}: {added:+.2f} ms")


def start_fleet(args: argparse.Namespace, work: Path) -> tuple[Fleet, list[Child], Child, str | None]:
    """Start the replicas, record their routes, start the gateway and nginx (its URL, or None)."""
    fleet = Fleet(work)
    model = build_model(work / "tiny.onnx")
    serve = ["polycloud.serving", "--model", str(model), "--name", SERVICE, "--home", str(work)]
    replicas = [
        fleet.start(Child(f"{'ab'[i % 2]}-{i}", [*serve, "--cluster", "ab"[i % 2]], 0))
        for i in range(args.replicas)
    ]
    database = f"sqlite:///{work / 'state.db'}"
    with Store.open(database) as store:
        spec: dict[str, Any] = {"metadata": {"name": SERVICE}, "spec": {"pattern": "active-active"}}
        workload = WorkloadInput(SERVICE, "Service", spec, content_hash(spec), [])
        store.apply(workloads=[workload], documents=[], author="bench", message="")
        pid = {c.name: c.proc.pid if c.proc else None for c in replicas}
        records = [
            ReplicaRecord(c.name, SERVICE, c.name[0], "active", 1, c.url, pid[c.name], "ready")
            for c in replicas
        ]
        store.replace_replicas(records)
    command = ["polycloud.gateway", "--addr", "127.0.0.1:0", "--routing-policy", args.policy]
    gateway = fleet.start(Child("gateway", [*command, "--database-url", database], 0))
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return fleet, replicas, gateway, None
    port = free_port()
    conf = nginx_conf(work, port, replicas)
    command = [nginx, "-c", str(conf), "-p", str(work)]
    fleet.others.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return fleet, replicas, gateway, f"http://127.0.0.1:{port}"


async def run(args: argparse.Namespace, work: Path) -> None:
    fleet, replicas, gateway, nginx = start_fleet(args, work)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=4)
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30)
        ) as session:
            for url in [*(c.url for c in replicas), gateway.url]:
                await wait_ready(session, url)
            direct = [f"{c.url}/v2/models/{SERVICE}/infer" for c in replicas]
            through = [f"{gateway.url}/v2/models/{SERVICE}/infer"]
            targets = [("direct (client spreads)", direct), ("gateway", through)]
            if nginx is not None:
                targets.insert(1, ("nginx", [f"{nginx}/v2/models/{SERVICE}/infer"]))
            for _, urls in targets:  # warm-up: connections, EWMAs, onnxruntime
                await closed_loop(session, urls, 400, args.concurrency)

            print(f"gateway benchmark: {args.replicas} replicas in 2 clusters, {os.cpu_count()} cores")
            await throughput(session, targets, args)
            await added_latency(session, direct, through, args)
            print(f"\n3. outage drills at {args.drill_rate:.0f} req/s: cluster a killed at 2 s, back at 4 s")
            cluster_a = [c for c in replicas if c.name.startswith("a")]
            for n in range(args.drills):
                report = await drill(session, fleet, gateway.url, cluster_a, args.drill_rate)
                print(f"  drill {n + 1}: {json.dumps(report)}")
    finally:
        if gateway.proc is not None:
            gateway.proc.send_signal(signal.SIGTERM)
            print(f"\ngateway exit status after SIGTERM: {gateway.proc.wait(timeout=30)}")
        fleet.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--drill-rate", type=float, default=200.0)
    parser.add_argument("--drills", type=int, default=3)
    parser.add_argument("--policy", default="locality", help="the gateway's routing policy")
    parser.add_argument(
        "--work", type=Path, help="keep state and logs in this folder (default: a temporary one)"
    )
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args, args.work.resolve()))
        return
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as work:
        asyncio.run(run(args, Path(work)))


if __name__ == "__main__":
    main()

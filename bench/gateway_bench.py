"""Gateway benchmark: added latency, throughput beside direct calls and nginx, outage drills, mTLS.

    .venv/bin/python bench/gateway_bench.py [--replicas 4] [--requests 2000] [--concurrency 16]
        [--rate 500] [--drill-rate 200] [--drills 3] [--policy locality] [--work DIR] [--mtls-only]

All on 127.0.0.1: N real replicas (`python -m polycloud.serving`, a tiny ONNX model built here) in
clusters `a` and `b`, their routes in a SQLite state store, the gateway (`python -m polycloud.gateway`),
nginx over the same replicas (Debian's `nginx-light`, installed with apt-get when missing and run as
root; its rows are skipped otherwise), and an aiohttp load generator here:

1. closed loop, `--requests` at `--concurrency` (best of 3): direct (the client spreads requests over
   the replicas itself: the baseline), nginx and the gateway, with their CPU time per request;
2. open loop at `--rate` (median of 3): p50/p99 direct and through the gateway, and the difference;
3. outage drills, 10 s at `--drill-rate`: cluster `a` SIGKILLed at 2 s, restarted on its ports at 4 s.
   Failed requests (anything but 200), p50/p99, p99 of requests sent in the 2 s after the kill, RTO
   (kill → the gateway's last failed attempt on `a`, from its /metrics) and recovery (restarted
   replicas ready → first answer served by `a`). `--work DIR` keeps the state store and logs.
4. mutual TLS inside the fleet (alone with `--mtls-only`), on a fleet of its own: N plain replicas and N
   replicas of the same model served with `--tls-dir` (https:// routes in the store), one gateway
   calling both with its fleet certificate (`bench/gateway_mtls.py` plays the CA), nginx over both (the
   TLS upstream with a client certificate, verified, sessions reused, kept alive). Closed loop (best of
   3) and open loop (median of 3, added latency against direct calls of the same scheme), all six
   targets interleaved in each round, each round after 200 unmeasured requests (open connections),
   the load generator using 64 connections at most (unbounded, TLS handshakes swamp it in a stall):
   direct plain and direct TLS (the load generator holding a client certificate: the baselines), nginx
   plain and TLS, the gateway plain and mTLS. Then the gateway's mTLS throughput as a share of nginx's
   with upstream TLS (the bar: >= 70 %) and of its own plain one, how many connections the gateway
   opened to the TLS replicas during one round, and whether it ever asked the store for a certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
from gateway_harness import (  # siblings of this script: run as `python bench/gateway_bench.py`
    SERVICE,
    Child,
    Fleet,
    Proxy,
    Result,
    added_latency,
    build_model,
    closed_loop,
    find_nginx,
    free_port,
    open_loop,
    record_routes,
    start_nginx,
    start_replicas,
    stop_gateway,
    throughput,
    wait_ready,
)
from gateway_mtls import run_mtls

from polycloud.state import Store

uvloop: ModuleType | None
try:
    import uvloop  # a faster load generator when installed
except ImportError:
    uvloop = None

FAILED_ATTEMPTS = re.compile(
    r'^polycloud_gateway_attempts_total\{cluster="a",outcome="(?:connect|broken|timeout|5xx)",[^}]*\} (\S+)$',
    re.M,
)


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


def start_fleet(args: argparse.Namespace, work: Path) -> tuple[Fleet, list[Child], Child, str | None]:
    """Start the replicas, record their routes, start the gateway and nginx (its URL, or None)."""
    fleet = Fleet(work)
    replicas = start_replicas(fleet, build_model(work / "tiny.onnx"), SERVICE, args.replicas)
    database = f"sqlite:///{work / 'state.db'}"
    with Store.open(database) as store:
        record_routes(store, {SERVICE: replicas})
    command = ["polycloud.gateway", "--addr", "127.0.0.1:0", "--routing-policy", args.policy]
    gateway = fleet.start(Child("gateway", [*command, "--database-url", database], 0))
    nginx = find_nginx()
    if nginx is None:
        return fleet, replicas, gateway, None
    port = free_port()
    start_nginx(fleet, nginx, [Proxy("replicas", port, [r.port for r in replicas])])
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
            gateway_pids = [gateway.proc.pid] if gateway.proc is not None else []
            proxies = {"gateway": gateway_pids, "nginx": [p.pid for p in fleet.others]}
            best = await throughput(session, targets, args, "1", proxies)
            if "nginx" in best:
                print(f"  gateway throughput = {best['gateway'].rps / best['nginx'].rps:.0%} of nginx's")
            lines = [("direct", direct), ("gateway", through)]
            await added_latency(session, lines, {"gateway": "direct"}, args)
            print(f"\n3. outage drills at {args.drill_rate:.0f} req/s: cluster a killed at 2 s, back at 4 s")
            cluster_a = [c for c in replicas if c.name.startswith("a")]
            for n in range(args.drills):
                report = await drill(session, fleet, gateway.url, cluster_a, args.drill_rate)
                print(f"  drill {n + 1}: {json.dumps(report)}")
    finally:
        stop_gateway(gateway)
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
    parser.add_argument("--mtls-only", action="store_true", help="only the mutual-TLS comparison (4.)")
    parser.add_argument(
        "--work", type=Path, help="keep state and logs in this folder (default: a temporary one)"
    )
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    with contextlib.ExitStack() as stack:
        if args.work is not None:
            args.work.mkdir(parents=True, exist_ok=True)
            work = args.work.resolve()
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-bench-")))
        if not args.mtls_only:
            asyncio.run(run(args, work))
        asyncio.run(run_mtls(args, work / "mtls"))


if __name__ == "__main__":
    main()

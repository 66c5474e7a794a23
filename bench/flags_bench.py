"""Feature flag benchmark: OFREP evaluations per second at the gateway, single and bulk, and the latency
flag-routed inference adds to plain routing.

    .venv/bin/python bench/flags_bench.py [--flags 20] [--requests 4000] [--concurrency 16]
        [--replicas 2] [--work DIR]

All on 127.0.0.1: `--flags` FeatureFlag documents (like the issue's `new-ranker`: an `if` on the region,
then a 30/70 `fractional` split by targetingKey) applied to a SQLite state store, `--replicas` real
replicas (`python -m polycloud.serving`, a tiny ONNX model) of service `bench`, the gateway
(`python -m polycloud.gateway`) reading the store, and an aiohttp load generator here. Each OFREP
measurement is the best of 3 closed-loop rounds, with the gateway's CPU time per request:

1. in process: `FlagBoard.evaluate` alone (flagd-core's evaluation, no HTTP), for scale; and what
   counting a kept bulk answer costs (the 304 path of a poll): the Prometheus counters alone against
   the counters plus the per-variant counts the gateway reports for the dashboard's shares;
2. `POST /ofrep/v1/evaluate/flags/{key}`, a new targetingKey each request (what a server-side
   OpenFeature provider sends per evaluation);
3. `POST /ofrep/v1/evaluate/flags` (every flag per request, as a client-side provider polls), and
   the same with `If-None-Match` of the last answer (the 304 path of an unchanged poll);
4. inference to `bench` directly and through service `routed`, whose `spec.routing` sends the flag
   `to-bench`'s variant `on` to `bench` (a 100/0 `fractional` on the x-polycloud-targeting-key header,
   so each request hashes): the two interleaved, 3 rounds, the medians of p50 and p99 and their
   difference, at concurrency 1 (latency alone) and at `--concurrency`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import aiohttp
from gateway_harness import (  # siblings: run as a script
    BODY,
    ROUNDS,
    SERVICE,
    Child,
    Fleet,
    Result,
    build_model,
    cpu_seconds,
    start_replicas,
    wait_ready,
)
from openfeature.evaluation_context import EvaluationContext

from polycloud.gateway.flagboard import FlagBoard
from polycloud.gateway.flagcount import FlagWindow
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.reporting import LoadWindow, RecordingMetrics
from polycloud.gateway.routes import FlagRoute
from polycloud.state import DocumentInput, ReplicaRecord, Store, WorkloadInput, content_hash

RULE = {"if": [{"==": [{"var": "region"}, "eu"]}, "on", {"fractional": [["on", 30], ["off", 70]]}]}


def flag_document(index: int) -> dict[str, Any]:
    spec = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": RULE,
    }
    name = f"flag-{index:03d}"
    return {"apiVersion": "polycloud/v1", "kind": "FeatureFlag", "metadata": {"name": name}, "spec": spec}


ROUTING = {"flag": "to-bench", "variants": {"on": SERVICE}}
TO_BENCH = {
    "apiVersion": "polycloud/v1",
    "kind": "FeatureFlag",
    "metadata": {"name": "to-bench"},
    "spec": {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"fractional": [["on", 100], ["off", 0]]},
    },
}


def record(database: str, count: int, replicas: list[Child]) -> None:
    """The flags, service `bench` over the replicas and service `routed` (no replicas) routing to it."""
    documents = [flag_document(i) for i in range(count)] + [TO_BENCH]
    inputs = [DocumentInput("FeatureFlag", d["metadata"]["name"], d, content_hash(d)) for d in documents]
    workloads = []
    for name, extra in ((SERVICE, {}), ("routed", {"routing": ROUTING})):
        spec: dict[str, Any] = {"metadata": {"name": name}, "spec": {"pattern": "active-active", **extra}}
        workloads.append(WorkloadInput(name, "Service", spec, content_hash(spec), []))
    with Store.open(database) as store:
        store.apply(workloads=workloads, documents=inputs, author="bench", message="")
        store.replace_replicas(
            [
                ReplicaRecord(
                    c.name, SERVICE, c.name[0], "active", 1, c.url, c.proc.pid if c.proc else None, "ready"
                )
                for c in replicas
            ]
        )


def in_process(count: int, evaluations: int) -> float:
    """Evaluations per second of the evaluator itself."""
    board = FlagBoard(GatewayMetrics())
    board.apply(
        {
            d["metadata"]["name"]: FlagRoute(d["metadata"]["name"], d["spec"])
            for d in map(flag_document, range(count))
        }
    )
    start = time.perf_counter()
    for i in range(evaluations):
        board.evaluate("flag-000", EvaluationContext(f"user-{i}", {"region": "us"}))
    return evaluations / (time.perf_counter() - start)


def counting(count: int, polls: int = 20_000) -> tuple[float, float]:
    """µs to count one kept bulk answer of `count` flags: (/metrics counters only, counters and the
    shares' window, as a reporting gateway does)."""
    answers = tuple((f"flag-{i:03d}", "on" if i % 3 else "off", "SPLIT") for i in range(count))
    costs = []
    for metrics in (GatewayMetrics(), RecordingMetrics(LoadWindow(), FlagWindow())):
        rounds = timeit.repeat(lambda m=metrics: m.flags_evaluated(answers), number=polls, repeat=5)
        costs.append(min(rounds) / polls * 1e6)
    return costs[0], costs[1]


async def closed_loop(
    session: aiohttp.ClientSession, url: str, n: int, concurrency: int, etag: str | None = None
) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    headers = {"content-type": "application/json", **({"if-none-match": etag} if etag else {})}
    expected = 304 if etag else 200

    async def worker() -> None:
        nonlocal errors
        while (i := next(counter)) < n:
            body = json.dumps(
                {"context": {"targetingKey": "poller" if etag else f"user-{i}", "region": "us"}}
            )
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    errors += response.status != expected
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(n, errors, time.perf_counter() - start, latencies)


async def best_of(
    session: aiohttp.ClientSession, url: str, args: argparse.Namespace, pid: int, etag: str | None = None
) -> Result:
    best: Result | None = None
    for _ in range(ROUNDS):
        before = cpu_seconds([pid])
        result = await closed_loop(session, url, args.requests, args.concurrency, etag)
        result.cpu_us = (cpu_seconds([pid]) - before) / result.requests * 1e6
        if best is None or result.rps > best.rps:
            best = result
    assert best is not None
    return best


async def wait_for_flags(session: aiohttp.ClientSession, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with session.post(f"{url}/ofrep/v1/evaluate/flags/flag-000", json={}) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit(f"the gateway at {url} did not answer flag-000 within {timeout_s:.0f} s")


async def infer_loop(session: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()

    async def worker() -> None:
        nonlocal errors
        while (i := next(counter)) < n:
            headers = {"content-type": "application/json", "x-polycloud-targeting-key": f"user-{i}"}
            start = time.perf_counter()
            try:
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    errors += response.status != 200
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(n, errors, time.perf_counter() - start, latencies)


async def routing_latency(session: aiohttp.ClientSession, gateway: str, args: argparse.Namespace) -> None:
    """Plain and flag-routed inference interleaved; medians over the rounds."""
    targets = {
        "plain": f"{gateway}/v2/models/{SERVICE}/infer",
        "flag-routed": f"{gateway}/v2/models/routed/infer",
    }
    for concurrency in (1, args.concurrency):
        n = args.requests // 4 if concurrency == 1 else args.requests
        rounds: dict[str, list[Result]] = {label: [] for label in targets}
        for _ in range(ROUNDS):
            for label, url in targets.items():
                rounds[label].append(await infer_loop(session, url, n, concurrency))
        print(f"\n4. inference, {n} requests at concurrency {concurrency}, medians of {ROUNDS} rounds")
        medians = {}
        for label, results in rounds.items():
            p50 = sorted(r.quantile(0.5) for r in results)[1]
            p99 = sorted(r.quantile(0.99) for r in results)[1]
            rps = sorted(r.rps for r in results)[1]
            errors = sum(r.errors for r in results)
            medians[label] = (p50, p99)
            print(f"  {label:<24} {rps:8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   errors {errors}")
        added = [medians["flag-routed"][i] - medians["plain"][i] for i in (0, 1)]
        print(f"  {'added by the flag':<24} {'':>14} p50 {added[0]:+6.2f} ms   p99 {added[1]:+6.2f} ms")


async def run(args: argparse.Namespace, work: Path) -> None:
    print(f"1. in process: FlagBoard.evaluate, {args.flags} flags")
    print(f"  {in_process(args.flags, 20_000):8.0f} evaluations/s (flagd-core, no HTTP)")
    metrics_only, with_shares = counting(args.flags)
    print(
        f"  counting a kept bulk answer of {args.flags} flags: {metrics_only:.2f} µs for /metrics alone, "
        f"{with_shares:.2f} µs with the variant shares (+{with_shares - metrics_only:.2f} µs)"
    )
    database = f"sqlite:///{work / 'state.db'}"
    fleet = Fleet(work)
    replicas = start_replicas(fleet, build_model(work / "tiny.onnx"), SERVICE, args.replicas)
    record(database, args.flags, replicas)
    gateway = fleet.start(
        Child("gateway", ["polycloud.gateway", "--addr", "127.0.0.1:0", "--database-url", database], 0)
    )
    assert gateway.proc is not None
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=4)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_for_flags(session, gateway.url)
            for child in replicas:
                await wait_ready(session, child.url)
            single = await best_of(
                session, f"{gateway.url}/ofrep/v1/evaluate/flags/flag-000", args, gateway.proc.pid
            )
            loop = f"{args.requests} at concurrency {args.concurrency}, best of {ROUNDS}"
            print(f"\n2. single evaluations, {loop}")
            print(single.line("POST .../flags/{key}"))
            bulk_url = f"{gateway.url}/ofrep/v1/evaluate/flags"
            bulk = await best_of(session, bulk_url, args, gateway.proc.pid)
            async with session.post(
                bulk_url, json={"context": {"targetingKey": "poller", "region": "us"}}
            ) as r:
                etag = r.headers["etag"]
            unchanged = await best_of(session, bulk_url, args, gateway.proc.pid, etag)
            print(f"\n3. bulk evaluations of {args.flags} flags, best of {ROUNDS}")
            print(bulk.line("POST .../flags (200)"))
            print(f"  {'':<24} {bulk.rps * args.flags:8.0f} flag evaluations/s")
            print(unchanged.line("POST .../flags (304)"))
            await routing_latency(session, gateway.url, args)
    finally:
        fleet.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flags", type=int, default=20, help="FeatureFlag documents applied")
    parser.add_argument("--requests", type=int, default=4000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--replicas", type=int, default=2, help="replicas of service bench")
    parser.add_argument("--work", type=Path, default=None, help="keep the store and logs here")
    args = parser.parse_args()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args, args.work))
        return
    with tempfile.TemporaryDirectory(prefix="polycloud-flags-bench-") as work:
        asyncio.run(run(args, Path(work)))


if __name__ == "__main__":
    main()

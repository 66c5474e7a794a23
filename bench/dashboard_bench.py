"""Dashboard benchmark: page load of a large fleet, live-update latency, and what the push channel costs
the gateway.

    .venv/bin/python bench/dashboard_bench.py [--quick] [--work DIR]

All on 127.0.0.1, in headless Chromium (Debian's, see tests/e2e/browser.py):

a. page load — a SQLite state store with 20 clusters in real aws/gcp/azure regions and 50 services applied
   through the real planner, ready replica records, load reports refreshed every second (a stand-in
   gateway), events, audit entries and cost-ledger lines. The API app (`create_app`, no reconciler) runs
   under uvicorn in a child process. Cold runs (a new browser profile each): navigation start → the map
   view's `data-ready="1"` (logging in with a code, as `polycloud dashboard` does), then tab click →
   `data-ready` for each other view. Baselines in the same run: GET /api/v1/dashboard/overview with
   httpx, and a trivial page (/api/v1/health) from the same server, navigation start → load event.
b. live update — one cluster's replica records flipped to `failed` in the store → the map's circle of it
   shows `data-health="down"` (and back), with the page left open; the feed samples once a second. Then
   the API process's CPU with 0 and with 10 open streams on this fleet.
c. gateway cost of the push channel — bench/gateway_bench.py's replicas and gateway over a SQLite store,
   the API app over the same store, and 0 or 10 open SSE clients on /api/v1/dashboard/stream, in
   alternating rounds (5 each, 3 with --quick): closed-loop throughput and open-loop p99 through the
   gateway, and the difference against the rounds' own spread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import gateway_bench as gw  # a sibling of this script: run as `python bench/dashboard_bench.py`
import httpx
import psutil
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from polycloud.api.app import create_app
from polycloud.catalog import Catalog, load_catalog
from polycloud.controller.accounting import Accountant
from polycloud.exchange import LoadReport
from polycloud.services import audit
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.inspecting import Endpoints
from polycloud.spec.models import Cluster
from polycloud.state import DocumentInput, EventInput, ReplicaRecord, Store, WorkloadInput, content_hash

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # Chromium is launched one way only: tests/e2e/browser.py
from tests.e2e.browser import launch  # noqa: E402

VIEWS = ("map", "services", "traffic", "incidents", "cost", "audit")
PROVIDERS = ("aws", "gcp", "azure")
TARGET_LOAD_S = 1.0
TARGET_LIVE_S = 2.0
SSE_CLIENTS = 10
WAIT_MS = 30_000
"""The longest any page wait may take before the benchmark reports a failure."""

# Installed before the page's own scripts: when each view first gets data-ready="1" and when each tab was
# clicked, on the page's clock (performance.now(), 0 = navigation start).
PROBE = """
window.__bench = { ready: {}, clicked: {} };
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("#tabs a");
  if (a) window.__bench.clicked[a.dataset.view] = performance.now();
}, true);
new MutationObserver((records) => {
  for (const r of records) {
    const v = r.target.dataset && r.target.dataset.view;
    const ready = window.__bench.ready;
    if (v && r.target.dataset.ready === "1" && !(v in ready)) ready[v] = performance.now();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
"""
OVERVIEW_TIMING = """performance.getEntriesByType("resource")
  .filter((e) => e.name.endsWith("/api/v1/dashboard/overview")).map((e) => e.duration)[0] ?? NaN"""


# ------------------------------------------------------------------------------------------ the fleet


def fleet_documents(catalog: Catalog, clusters: int, services: int, seed: int = 7) -> list[dict[str, Any]]:
    """`clusters` clusters spread over the catalog regions of aws, gcp and azure, a few datasets, and
    `services` CPU services of the patterns the map draws (single, active-active, active-passive), most
    with user traffic from other regions and some reading a dataset."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    regions = {p: [r for r in catalog.regions(p) if catalog.offerings(p, r.region)] for p in PROVIDERS}
    names = []
    per_provider = -(-clusters // len(PROVIDERS))
    for i in range(clusters):
        provider = PROVIDERS[i % len(PROVIDERS)]
        pool = regions[provider]  # sorted by name, which spreads them over the continents
        region = pool[int(i // len(PROVIDERS) * len(pool) / per_provider)]
        name = f"{provider}-{region.region}"
        names.append(name)
        docs.append(_doc("Cluster", name, {"provider": provider, "region": region.region}))
    datasets = [f"data-{i}" for i in range(4)]
    for i, dataset in enumerate(datasets):
        docs.append(_doc("Dataset", dataset, {"cluster": names[i * 5], "sizeGB": 200 * (i + 1)}))
    all_regions = [f"{p}/{r.region}" for p in PROVIDERS for r in regions[p]]
    for i in range(services):
        pattern = ("single", "active-active", "active-passive")[i % 3]
        spec: dict[str, Any] = {
            "model": {"uri": f"s3://models/model-{i}.onnx"},
            "resources": {"vcpus": rng.choice([2, 4, 8]), "memoryGiB": rng.choice([4, 8, 16])},
            "replicas": rng.randint(1, 3),
            "pattern": pattern,
            "placement": {"clusters": rng.sample(names, 4)},
        }
        if rng.random() < 0.8:
            sources = rng.sample(all_regions, rng.randint(1, 3))
            spec["traffic"] = [{"region": s, "share": 1 / len(sources)} for s in sources]
        if rng.random() < 0.3:
            spec["reads"] = [{"dataset": rng.choice(datasets), "gbPerMonth": rng.randint(10, 500)}]
        docs.append(_doc("Service", f"svc-{i:02d}", spec, team=f"team-{i % 5}"))
    return docs


def _doc(kind: str, name: str, spec: dict[str, Any], team: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"team": team}} if team else {"name": name}
    return {"apiVersion": "polycloud/v1", "kind": kind, "metadata": metadata, "spec": spec}


def build_store(database: str, clusters: int, services: int) -> tuple[list[ReplicaRecord], list[str]]:
    """Apply the fleet through the real planner and fill in what the views show; returns the replica
    records (all ready) and the cluster names."""
    catalog = load_catalog()
    with Store.open(database) as store:
        documents = fleet_documents(catalog, clusters, services)
        FleetService(store, catalog).apply(documents, author="bench", message="bench", dry_run=False)
        replicas = [
            ReplicaRecord(
                id=f"{w.name}-{a['cluster']}-{i}",
                workload=w.name,
                cluster=str(a["cluster"]),
                role=str(a["role"]),
                revision=w.number,
                endpoint=f"http://127.0.0.1:{20000 + n}",  # never called: nothing here proxies
                pid=None,
                state="ready",
            )
            for n, w in enumerate(store.current())
            for a in w.placement
            for i in range(int(a["replicas"]))
        ]
        store.replace_replicas(replicas)
        names = [d.name for d in store.documents("Cluster")]
        store.add_events(
            [
                EventInput("info", "ReplicaStarted", f"{r.id} is ready", r.workload, r.cluster)
                for r in replicas[:60]
            ]
            + [EventInput("warning", "FailoverStarted", "bench: a past failover", "svc-01", names[0])]
        )
        for n in range(30):
            audit.record(store, actor="bench", action="apply", target="fleet", detail={"n": n})
        accountant = Accountant(store, catalog)
        accountant.step()
        time.sleep(1.0)
        accountant.step()  # two passes: cost lines that have a duration
    return replicas, names


class LoadReports(threading.Thread):
    """A stand-in gateway: reports load on every (service, cluster) once a second, as gateways do."""

    def __init__(self, database: str, replicas: list[ReplicaRecord]) -> None:
        super().__init__(name="load-reports", daemon=True)
        self.database = database
        self.pairs = sorted({(r.workload, r.cluster) for r in replicas if r.role == "active"})
        self.halt = threading.Event()

    def run(self) -> None:
        rng = random.Random(1)
        with Store.open(self.database) as store:
            while not self.halt.is_set():
                rows = [
                    LoadReport(
                        service=s,
                        cluster=c,
                        in_flight=1.0,
                        in_flight_mean=1.0,
                        rps=rng.uniform(5, 50),
                        error_rate=rng.choice([0.0, 0.0, 0.01]),
                        p99_ms=rng.uniform(40, 120),
                        p50_ms=rng.uniform(8, 30),
                    )
                    for s, c in self.pairs
                ]
                store.report_load("bench-gateway", rows)
                self.halt.wait(1.0)


# ----------------------------------------------------------------------------- the API, in a child


def serve(database: str) -> None:
    """Child process: the API app over `database` with no-op controller hooks; prints its URL."""
    store = Store.open(database)
    catalog = load_catalog()
    sock = gw.listener()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    noop = lambda *_: None  # noqa: E731 -- no reconciler here: nothing to wake, fault or stop
    context = ApiContext(store, FleetService(store, catalog), Endpoints(url, url), noop, noop, noop)
    app = create_app(context)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    app.state.feed.stopping = lambda: server.should_exit
    print(url, flush=True)
    server.run(sockets=[sock])


def start_api(database: str, work: Path) -> tuple[subprocess.Popen[str], str]:
    log = (work / "api.log").open("a")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", database],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise SystemExit(f"the API did not start; see {work / 'api.log'}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.05)
    raise SystemExit(f"the API at {url} did not answer; see {work / 'api.log'}")


def admin_token(database: str) -> tuple[str, int]:
    with Store.open(database) as store:
        token, record = store.create_token(name="bench", role="admin", project=None, expires_at=None)
    return token, record.id


def login_code(database: str, token_id: int) -> str:
    with Store.open(database) as store:
        return store.issue_login_code(token_id, timedelta(minutes=2))


# ------------------------------------------------------------------------------------ a. page load


def stats(values: list[float]) -> str:
    return f"median {statistics.median(values):7.0f} ms   max {max(values):7.0f} ms"


def page_load(browser: Browser, url: str, database: str, token: str, token_id: int, runs: int) -> bool:
    print(f"\na. page load, {runs} cold runs (a new browser profile each)")
    ready: dict[str, list[float]] = {v: [] for v in VIEWS}
    loaded: list[float] = []
    in_page: list[float] = []  # the page's own GET of the overview, from its resource timing
    errors: list[str] = []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_init_script(PROBE)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/#login={login_code(database, token_id)}")
        _ready(page, "map")
        ready["map"].append(page.evaluate("window.__bench.ready.map"))
        loaded.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        in_page.append(page.evaluate(OVERVIEW_TIMING))
        for view in VIEWS[1:]:
            page.locator(f'#tabs a[data-view="{view}"]').click()
            _ready(page, view)
            ready[view].append(page.evaluate(f"__bench.ready.{view} - __bench.clicked.{view}"))
        context.close()
    overview, blank = [], []
    for _ in range(runs):
        with httpx.Client(headers={"authorization": f"Bearer {token}"}, trust_env=False) as client:
            start = time.perf_counter()
            client.get(f"{url}/api/v1/dashboard/overview").raise_for_status()
            overview.append((time.perf_counter() - start) * 1000)
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{url}/api/v1/health", wait_until="load")
        blank.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        context.close()
    bearer = {"authorization": f"Bearer {token}"}
    size = len(httpx.get(f"{url}/api/v1/dashboard/overview", headers=bearer, trust_env=False).content)
    print(f"  {'navigation → map data-ready':<38} {stats(ready['map'])}")
    print(f"  {'navigation → load event':<38} {stats(loaded)}")
    for view in VIEWS[1:]:
        print(f"  {f'tab click → {view} data-ready':<38} {stats(ready[view])}")
    print(f"  {'the page GETs the overview':<38} {stats(in_page)}")
    print(f"  {f'baseline: GET overview ({size / 1024:.0f} KiB)':<38} {stats(overview)}")
    print(f"  {'baseline: trivial page → load event':<38} {stats(blank)}")
    met = statistics.median(ready["map"]) < TARGET_LOAD_S * 1000
    print(f"  target: map ready < {TARGET_LOAD_S:.0f} s (median): {'met' if met else 'MISSED'}")
    if errors:
        print(f"  page errors ({len(errors)}): {sorted(set(errors))[:5]}")
    return met


def _ready(page: Page, view: str) -> None:
    selector = f'section.view[data-view="{view}"][data-ready="1"]'
    page.wait_for_selector(selector, state="attached", timeout=WAIT_MS)


# -------------------------------------------------------------------------------- b. live update


def live_update(
    browser: Browser, url: str, database: str, token_id: int, replicas: list[ReplicaRecord], runs: int
) -> bool:
    counts: dict[str, int] = {}
    for r in replicas:
        counts[r.cluster] = counts.get(r.cluster, 0) + 1
    cluster = max(counts, key=lambda c: counts[c])
    print(f"\nb. live update, {runs} runs: {cluster}'s {counts[cluster]} replicas failed in the store → map")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/#login={login_code(database, token_id)}")
    _ready(page, "map")
    circle = f'svg circle.cluster[data-cluster="{cluster}"]'
    failed = [replace(r, state="failed") if r.cluster == cluster else r for r in replicas]
    down: list[float] = []
    up: list[float] = []
    with Store.open(database) as store:
        page.wait_for_selector(f'{circle}[data-health="up"]', state="attached", timeout=WAIT_MS)
        for _ in range(runs):
            for records, health, into in ((failed, "down", down), (replicas, "up", up)):
                time.sleep(random.uniform(0.2, 1.2))  # a different phase against the feed's 1 s tick
                start = time.perf_counter()
                store.replace_replicas(records)
                page.wait_for_selector(f'{circle}[data-health="{health}"]', state="attached", timeout=WAIT_MS)
                into.append((time.perf_counter() - start) * 1000)
    context.close()
    print(f"  {'store → circle down':<38} {stats(down)}")
    print(f"  {'store → circle up again':<38} {stats(up)}")
    met = max(down) <= TARGET_LIVE_S * 1000
    print(f"  target: ≤ {TARGET_LIVE_S:.0f} s (max): {'met' if met else 'MISSED'}")
    return met


def open_streams(url: str, token: str, n: int) -> subprocess.Popen[str]:
    """`n` open streams in a child process (see `sse_clients`), once all are connected; close its stdin
    to end them, and read how many overviews they received."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--sse", url, token, str(n)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise SystemExit("the SSE clients did not connect")
    return child


def stream_cpu(pid: int, url: str, token: str, seconds: float = 5.0) -> None:
    """The API process's CPU over `seconds` with 0 and with SSE_CLIENTS open streams, on this fleet."""
    process = psutil.Process(pid)
    used = []
    for n in (0, SSE_CLIENTS):
        child = open_streams(url, token, n) if n else None
        cpu = sum(process.cpu_times()[:2])
        time.sleep(seconds)
        used.append((sum(process.cpu_times()[:2]) - cpu) / seconds)
        if child is not None:
            child.communicate("", timeout=30)
    print(
        f"  the API's CPU on this fleet: {used[0]:.1%} of a core with no page open, {used[1]:.1%} with "
        f"{SSE_CLIENTS} open streams (one overview a second, shared by every stream)"
    )


# ---------------------------------------------------------------------- c. the gateway and streams


def sse_clients(url: str, token: str, n: int) -> None:
    """Child process: `n` open streams, each reading every message; prints `ready` once every stream
    has had its first overview and, when stdin closes, the number of overviews received since."""

    async def run() -> None:
        received = [0] * n
        first = [asyncio.Event() for _ in range(n)]
        headers = {"authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)

        async def one(i: int, session: aiohttp.ClientSession) -> None:
            async with session.get(f"{url}/api/v1/dashboard/stream", headers=headers) as response:
                async for line in response.content:
                    if line.startswith(b"event: overview"):
                        received[i] += 1
                        first[i].set()

        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks = [asyncio.create_task(one(i, session)) for i in range(n)]
            await asyncio.wait_for(asyncio.gather(*(f.wait() for f in first)), 30)
            print("ready", flush=True)
            before = sum(received)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            print(sum(received) - before, flush=True)
            for task in tasks:
                task.cancel()

    asyncio.run(run())


def add_cluster_documents(database: str) -> None:
    """gateway_bench records replicas in clusters `a` and `b` without Cluster documents; the overview
    needs them (see the report: it fails on a replica of an undeclared cluster)."""
    docs = []
    for name, (lat, lon) in {"a": (39.0, -77.5), "b": (45.5, -73.6)}.items():
        spec = {
            "provider": f"site-{name}", "region": "dc1", "driver": {"type": "local"},
            "location": {"lat": lat, "lon": lon},
            "instances": [{"name": "cpu", "vcpus": 16, "memoryGiB": 64, "hourlyUSD": 0.5}],
        }  # fmt: skip
        document = Cluster.model_validate(_doc("Cluster", name, spec)).model_dump(mode="json")
        docs.append(DocumentInput("Cluster", name, document, content_hash(document)))
    spec = {"metadata": {"name": gw.SERVICE}, "spec": {"pattern": "active-active"}}
    workload = WorkloadInput(gw.SERVICE, "Service", spec, content_hash(spec), [])
    with Store.open(database) as store:
        store.apply(workloads=[workload], documents=docs, author="bench", message="", prune=False)


async def gateway_rounds(
    gateway: str, api: tuple[str, int], token: str, rounds: int, args: argparse.Namespace
) -> bool:
    """The rounds of c.; `api` is the API's URL and pid (its CPU time is read around each round)."""
    infer = [f"{gateway}/v2/models/{gw.SERVICE}/infer"]
    seconds = args.requests / args.rate
    figures: dict[int, list[tuple[float, float]]] = {0: [], SSE_CLIENTS: []}
    api_cpu: dict[int, list[float]] = {0: [], SSE_CLIENTS: []}
    api_process = psutil.Process(api[1])
    pushed: list[float] = []
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await gw.wait_ready(session, gateway)
        await gw.closed_loop(session, infer, 400, args.concurrency)  # warm-up
        for n in [0, SSE_CLIENTS] * rounds:
            child = open_streams(api[0], token, n) if n else None
            begin, cpu = time.perf_counter(), sum(api_process.cpu_times()[:2])
            closed = await gw.closed_loop(session, infer, args.requests, args.concurrency)
            opened = await gw.open_loop(session, infer, args.rate, seconds)
            wall = time.perf_counter() - begin
            api_cpu[n].append((sum(api_process.cpu_times()[:2]) - cpu) / wall)
            if child is not None:
                out, _ = child.communicate("", timeout=30)
                pushed.append(int(out.strip() or 0) / wall)
            if closed.errors or opened.errors:
                print(f"  ({closed.errors + opened.errors} failed requests in a round with {n} streams)")
            figures[n].append((closed.rps, opened.quantile(0.99)))
    print(
        f"  overviews pushed while {SSE_CLIENTS} streams were open: {statistics.mean(pushed):.1f}/s in all; "
        f"API process CPU {statistics.mean(api_cpu[0]):.1%} of a core with 0 streams, "
        f"{statistics.mean(api_cpu[SSE_CLIENTS]):.1%} with {SSE_CLIENTS}"
    )
    print(f"  {'':<24} {'throughput (req/s)':>28}   {'open-loop p99 (ms)':>26}")
    for n, rows in figures.items():
        rps, p99 = [r for r, _ in rows], [p for _, p in rows]
        print(
            f"  {f'{n} streams':<24} {statistics.mean(rps):8.0f} ± {statistics.stdev(rps):4.0f} "
            f"[{min(rps):5.0f}–{max(rps):5.0f}]   "
            f"{statistics.median(p99):7.2f} [{min(p99):5.2f}–{max(p99):5.2f}]"
        )
    within = True
    for what, index in (("throughput (means)", 0), ("p99 (medians)", 1)):
        base = [row[index] for row in figures[0]]
        with_streams = [row[index] for row in figures[SSE_CLIENTS]]
        centre = statistics.mean if index == 0 else statistics.median  # one slow round skews a p99 mean
        diff = centre(with_streams) - centre(base)
        # Noise: the standard error of a difference of two means, from the rounds' own spread.
        noise = statistics.fmean([statistics.variance(base), statistics.variance(with_streams)]) ** 0.5
        noise *= (1 / len(base) + 1 / len(with_streams)) ** 0.5
        spread = max(base) - min(base)
        ok = abs(diff) <= max(2 * noise, spread)
        within &= ok
        unit = "req/s" if index == 0 else "ms"
        verdict = "within noise" if ok else "BEYOND noise"
        relative = diff / centre(base)
        print(
            f"  {what}: {SSE_CLIENTS} streams − 0 = {diff:+.2f} {unit} ({relative:+.1%}); "
            f"2 × s.e. {2 * noise:.2f}, range at 0 streams {spread:.2f}: {verdict}"
        )
    return within


def gateway_cost(work: Path, args: argparse.Namespace) -> bool:
    rounds = 3 if args.quick else 5
    print(
        f"\nc. gateway with 0 vs {SSE_CLIENTS} open dashboard streams, {rounds} alternating rounds each: "
        f"closed loop {args.requests} requests at concurrency {args.concurrency}, "
        f"open loop {args.rate:.0f} req/s for {args.requests / args.rate:.0f} s"
    )
    options = argparse.Namespace(replicas=4, policy="locality")
    fleet, _, gateway, _ = gw.start_fleet(options, work)
    api: subprocess.Popen[str] | None = None
    try:
        database = f"sqlite:///{work / 'state.db'}"
        add_cluster_documents(database)
        token, _ = admin_token(database)
        api, url = start_api(database, work)
        return asyncio.run(gateway_rounds(gateway.url, (url, api.pid), token, rounds, args))
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
        fleet.close()


# ------------------------------------------------------------------------------------------- main


def pages(work: Path, args: argparse.Namespace) -> tuple[bool, bool]:
    database = f"sqlite:///{work / 'fleet.db'}"
    start = time.perf_counter()
    replicas, names = build_store(database, clusters=20, services=50)
    busy = len({r.cluster for r in replicas})
    print(
        f"fleet: {len(names)} clusters ({busy} with replicas), 50 services, {len(replicas)} replicas "
        f"(applied through the planner in {time.perf_counter() - start:.1f} s); {os.cpu_count()} cores"
    )
    reports = LoadReports(database, replicas)
    reports.start()
    api, url = start_api(database, work)
    token, token_id = admin_token(database)
    runs = 3 if args.quick else 5
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                loaded = page_load(browser, url, database, token, token_id, runs)
                live = live_update(browser, url, database, token_id, replicas, runs)
            finally:
                browser.close()
        stream_cpu(api.pid, url, token)
    finally:
        reports.halt.set()
        reports.join(10)
        api.terminate()
        api.wait(30)
    return loaded, live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and rounds")
    parser.add_argument("--requests", type=int, default=2000, help="closed-loop requests per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests per second")
    parser.add_argument("--skip-gateway", action="store_true", help="only a. and b.")
    parser.add_argument("--work", type=Path, help="keep stores and logs here (default: a temporary folder)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # child: the API over this database
    parser.add_argument("--sse", nargs=3, help=argparse.SUPPRESS)  # child: URL TOKEN N streams
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.sse:
        sse_clients(args.sse[0], args.sse[1], int(args.sse[2]))
        return
    with contextlib.ExitStack() as stack:
        if args.work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dashboard-bench-")))
        else:
            work = args.work.resolve()
            work.mkdir(parents=True, exist_ok=True)
        loaded, live = pages(work, args)
        quiet = True
        if not args.skip_gateway:
            (work / "gateway").mkdir(exist_ok=True)
            quiet = gateway_cost(work / "gateway", args)
    print(
        f"\nsummary: page load < {TARGET_LOAD_S:.0f} s {'met' if loaded else 'MISSED'}; "
        f"live update ≤ {TARGET_LIVE_S:.0f} s {'met' if live else 'MISSED'}; "
        f"gateway unaffected by streams: {'yes' if quiet else 'NO'}"
    )


if __name__ == "__main__":
    main()

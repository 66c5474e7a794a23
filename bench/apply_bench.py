"""Benchmark of the runtime on the embedded local driver (issue 3's quality bars).

    .venv/bin/python bench/apply_bench.py [--clusters 5] [--services 4] [--replicas 2] [--kills 20]

Measures, in a fresh home with its own ports, each figure printed with its target and PASS/FAIL:

(a) apply → all ready: `polycloud apply --yes` of `clusters × services × replicas` replicas (40 by
    default) with the control plane already up, until the API reports every replica ready.
    Target ≤ 15 s.
(b) replacement after SIGKILL: median and p95 over `kills` kills, from the kill until the API reports
    the group back at its declared count of ready replicas, none of them the killed process (polled at
    ~20 Hz with one persistent HTTP client and the admin token). Target median ≤ 2 s. Where the time
    goes: detect and decide (kill → the replacement process exists), interpreter and imports (→ its
    `loading` event), model load and bind (→ its `ready` event), probe and record (→ the API says ready).
(c) memory per replica: RSS of every replica process once each has answered an inference request, mean
    and max. Target ≤ 150 MB.

Baseline, same run: the cold start of one bare `python -m polycloud.serving` process to a 200 from
`/v2/health/ready` — what a replacement cannot beat. Everything started is stopped at the end
(`polycloud down`, then SIGKILL for anything of the home still alive).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "fleet" / "models" / "iris.onnx"
POLYCLOUD = Path(sys.executable).with_name("polycloud")
POLL_S = 0.05
"""Status polling period (20 Hz)."""
GIVE_UP_S = 120.0
"""How long any single wait may take before the benchmark reports a failure."""
SAMPLE = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}

TARGET_APPLY_S = 15.0
TARGET_REPLACE_MEDIAN_S = 2.0
TARGET_RSS_MB = 150.0

Status = dict[str, Any]


# ------------------------------------------------------------------------------------------- setup


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fleet_documents(model: Path, clusters: int, services: int, replicas: int) -> list[dict[str, Any]]:
    """Private-site clusters on the local driver, each with `services` pinned services of `replicas`."""
    docs: list[dict[str, Any]] = []
    for c in range(clusters):
        docs.append(
            {
                "apiVersion": "polycloud/v1",
                "kind": "Cluster",
                "metadata": {"name": f"site{c}"},
                "spec": {
                    "provider": f"site{c}",
                    "region": "dc1",
                    "driver": {"type": "local"},
                    "location": {"lat": 39.0 + c, "lon": -77.5 + c},
                    "instances": [{"name": "cpu-node", "vcpus": 64, "memoryGiB": 256, "hourlyUSD": 1.0}],
                },
            }
        )
        for s in range(services):
            docs.append(
                {
                    "apiVersion": "polycloud/v1",
                    "kind": "Service",
                    "metadata": {"name": f"svc{s}-site{c}"},
                    "spec": {
                        "model": {"path": str(model)},
                        "resources": {"vcpus": 1, "memoryGiB": 1},
                        "replicas": replicas,
                        "pattern": "single",
                        "placement": {"clusters": [f"site{c}"]},
                    },
                }
            )
    return docs


@dataclass
class Bench:
    """One home, its environment, and a client of its control plane."""

    root: Path
    home: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    _client: httpx.Client | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
        self.env |= {
            "POLYCLOUD_HOME": str(self.home),
            "POLYCLOUD_GATEWAY_ADDR": f"127.0.0.1:{free_port()}",
            "POLYCLOUD_API_ADDR": f"127.0.0.1:{free_port()}",
            "COLUMNS": "200",
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `polycloud ARGS` to its end; raise with its output when it fails."""
        done = subprocess.run(
            [str(POLYCLOUD), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"polycloud {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def client(self) -> httpx.Client:
        """A persistent HTTP client of the control plane's API, with the admin token."""
        if self._client is None:
            info = json.loads((self.home / "control-plane.json").read_text())
            token = (self.home / "admin.token").read_text().strip()
            self._client = httpx.Client(
                base_url=f"{info['api_url']}/api/v1",
                headers={"authorization": f"Bearer {token}"},
                timeout=10.0,
                trust_env=False,
            )
        return self._client

    def status(self) -> Status:
        """`GET /api/v1/status`."""
        response = self.client().get("/status")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        """`polycloud down`, then SIGKILL whatever of the home is still alive."""
        if self._client is not None:
            self._client.close()
        if self.home.exists():
            subprocess.run(
                [str(POLYCLOUD), "down"],
                cwd=self.root,
                env=self.env,
                capture_output=True,
                timeout=300,
                check=False,
            )
        for proc in home_processes(self.home):
            print(f"  warning: pid {proc.pid} was still running after `polycloud down`; killed")
            proc.kill()


def home_processes(home: Path) -> list[psutil.Process]:
    """Every live process whose arguments or `POLYCLOUD_HOME` name `home` (this one excluded)."""
    wanted = str(home.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info.get("cmdline") or []
            if proc.pid == os.getpid() or not cmdline:
                continue
            if any(wanted in arg for arg in cmdline) or proc.environ().get("POLYCLOUD_HOME") == wanted:
                found.append(proc)
        except psutil.Error:
            continue
    return found


# -------------------------------------------------------------------------------------- helpers


def replicas(status: Status) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    """(service, cluster, desired, replica) for every listed replica."""
    for svc in status["services"]:
        for c in svc["clusters"]:
            for r in c["replicas"]:
                yield svc["name"], c["cluster"], c["desired"], r


def all_ready(status: Status, expected: int) -> bool:
    """Whether exactly `expected` replicas are listed and every one is ready."""
    states = [r["state"] for *_, r in replicas(status)]
    return len(states) == expected and all(s == "ready" for s in states)


def poll(check: Callable[[], bool], what: str) -> float:
    """Call `check` every `POLL_S` until true; return the wall time (time.time()) it first was."""
    deadline = time.monotonic() + GIVE_UP_S
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(POLL_S)
    return time.time()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0 < q <= 1) by nearest rank: the p95 of 20 values is the 19th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def log_event_time(log: Path, event: str, after: float) -> float | None:
    """The wall time of the first `event` line of a replica log written at or after `after`."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if f'"event": "{event}"' not in line:
            continue
        try:
            ts = datetime.fromisoformat(json.loads(line)["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError):
            continue
        if ts >= after - 0.01:  # the log has millisecond timestamps
            return ts
    return None


@contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n{title}", flush=True)
    yield


# ------------------------------------------------------------------------------------- baseline


def bare_cold_start(model: Path, runs: int = 3) -> list[float]:
    """Seconds from spawning one bare `python -m polycloud.serving` to a 200 from /v2/health/ready."""
    times = []
    with httpx.Client(timeout=1.0, trust_env=False) as http:
        for _ in range(runs):
            port = free_port()
            started = time.monotonic()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "polycloud.serving",
                    "--model",
                    str(model),
                    "--name",
                    "iris",
                    "--port",
                    str(port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = started + GIVE_UP_S
                while time.monotonic() < deadline:
                    try:
                        if http.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                            times.append(time.monotonic() - started)
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.01)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return times


# --------------------------------------------------------------------------------- measurements


def measure_apply(bench: Bench, fleet: Path, expected: int) -> tuple[float, float, float]:
    """Run `apply --yes`; seconds to the revision being recorded, to all ready (API), to the CLI's exit."""
    started = time.time()
    proc = subprocess.Popen(
        [str(POLYCLOUD), "apply", str(fleet), "--yes"],
        cwd=bench.root,
        env=bench.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    recorded: list[float] = []

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("recorded:"):
                recorded.append(time.time())

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        ready_at = poll(lambda: bool(recorded) and all_ready(bench.status(), expected), "all replicas ready")
        proc.wait(GIVE_UP_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    exited = time.time()
    reader.join(5)
    if proc.returncode != 0:
        raise RuntimeError(f"apply exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    return recorded[0] - started, ready_at - started, exited - started


def memory_per_replica(bench: Bench) -> tuple[list[float], list[float]]:
    """RSS and USS (MB) of every replica after one inference request each."""
    rss, uss = [], []
    with httpx.Client(timeout=10.0, trust_env=False) as http:
        for service, _, _, r in replicas(bench.status()):
            http.post(f"{r['endpoint']}/v2/models/{service}/infer", json=SAMPLE).raise_for_status()
            info = psutil.Process(r["pid"]).memory_full_info()
            rss.append(info.rss / 2**20)
            uss.append(info.uss / 2**20)
    return rss, uss


@dataclass(frozen=True)
class Replacement:
    """One kill and its replacement: wall times (time.time()) of each step, None when not seen."""

    killed: float
    failed_event: float | None
    """The reconciler recorded the `ReplicaFailed` event (it saw the process gone)."""
    starting_event: float | None
    """It recorded `ReplicaStarting` for the replacement (after its back-off; the process is spawned)."""
    loading: float | None
    """The replacement logged `loading` (interpreter up, imports done)."""
    replica_ready: float | None
    """The replacement logged `ready` (model loaded, socket served)."""
    api_ready: float
    """The API reported the group whole again."""

    @property
    def total(self) -> float:
        return self.api_ready - self.killed

    def steps(self) -> list[float] | None:
        """Durations between consecutive steps, when every step was seen."""
        times = [
            self.killed,
            self.failed_event,
            self.starting_event,
            self.loading,
            self.replica_ready,
            self.api_ready,
        ]
        seen = [t for t in times if t is not None]
        if len(seen) != len(times):
            return None
        return [b - a for a, b in itertools.pairwise(seen)]


STEPS = [
    "detect (kill → ReplicaFailed event)",
    "back-off + decide + spawn (→ ReplicaStarting event)",
    "interpreter + imports (→ replica logs `loading`)",
    "model load + serve (→ replica logs `ready`)",
    "readiness probe + record (→ API says ready)",
]


def event_time(bench: Bench, workload: str, reason: str, after: float, text: str = "") -> float | None:
    """The time of the first `reason` event of `workload` at or after `after` whose message has `text`."""
    events = bench.client().get("/events", params={"workload": workload, "limit": 50}).json()
    times = [
        datetime.fromisoformat(e["time"]).timestamp()
        for e in events
        if e["reason"] == reason and text in e["message"]
    ]
    later = [t for t in times if t >= after - 0.01]
    return min(later) if later else None


def kill_and_replace(bench: Bench, service: str, cluster: str) -> Replacement:
    """SIGKILL one ready replica of (service, cluster); wait until the group is whole again without it."""
    status = bench.status()
    group = [(d, r) for s, c, d, r in replicas(status) if (s, c) == (service, cluster)]
    desired = group[0][0]
    victim = next(r for _, r in group if r["state"] == "ready")
    before = {r["pid"] for _, r in group}
    killed = time.time()
    os.kill(victim["pid"], signal.SIGKILL)
    newcomer: dict[str, Any] = {}

    def whole() -> bool:
        reps = [r for s, c, _, r in replicas(bench.status()) if (s, c) == (service, cluster)]
        fresh = [r for r in reps if r["pid"] not in before]
        if fresh:
            newcomer.update(fresh[0])
        ready = [r for r in reps if r["state"] == "ready" and r["pid"] != victim["pid"]]
        return len(reps) == desired and len(ready) == desired

    api_ready = poll(whole, f"a replacement in {service}/{cluster}")
    new_id = str(newcomer.get("id", ""))
    log = bench.home / "logs" / f"{new_id}.log"
    return Replacement(
        killed=killed,
        failed_event=event_time(bench, service, "ReplicaFailed", killed, victim["id"]),
        starting_event=event_time(bench, service, "ReplicaStarting", killed, new_id) if new_id else None,
        loading=log_event_time(log, "loading", killed) if new_id else None,
        replica_ready=log_event_time(log, "ready", killed) if new_id else None,
        api_ready=api_ready,
    )


# ------------------------------------------------------------------------------------------ main


def report_baseline(model: Path, when: str) -> float:
    """Print the bare cold start; returns its median."""
    times = bare_cold_start(model)
    median = statistics.median(times)
    print(f"  {when}: median {median:.2f} s over {len(times)} runs ({', '.join(f'{t:.2f}' for t in times)})")
    return median


def report_apply(bench: Bench, fleet: Path, expected: int) -> bool:
    """(a): start the control plane, then time `apply` until all `expected` replicas are ready."""
    started = time.monotonic()
    bench.cli("up", "--detach")
    print(f"  control plane start (`polycloud up --detach`, not counted): {time.monotonic() - started:.2f} s")
    recorded, ready, exited = measure_apply(bench, fleet, expected)
    ok = ready <= TARGET_APPLY_S
    print(f"  all {expected} ready after {ready:.2f} s   target ≤ {TARGET_APPLY_S:.0f} s   {verdict(ok)}")
    print(f"    CLI start + plan + record: {recorded:.2f} s; the CLI itself returned after {exited:.2f} s")
    return ok


def report_memory(bench: Bench) -> bool:
    """(c): RSS of every replica."""
    rss, uss = memory_per_replica(bench)
    ok = max(rss) <= TARGET_RSS_MB
    print(
        f"  RSS mean {statistics.mean(rss):.1f} MB, max {max(rss):.1f} MB   "
        f"target ≤ {TARGET_RSS_MB:.0f} MB   {verdict(ok)}"
    )
    print(f"    unique memory (USS) mean {statistics.mean(uss):.1f} MB: what one more replica really costs")
    return ok


def report_replacements(bench: Bench, kills: int) -> bool:
    """(b): kill a ready replica of each group in turn, `kills` times; timings of the replacements."""
    groups = sorted({(s, c) for s, c, _, _ in replicas(bench.status())})
    samples = []
    for i in range(kills):
        service, cluster = groups[i % len(groups)]
        sample = kill_and_replace(bench, service, cluster)
        samples.append(sample)
        print(f"  kill {i + 1:2d} {service}/{cluster}: {sample.total:.2f} s", flush=True)
        time.sleep(0.3)  # let the reconciler record the whole group before the next kill
    totals = [s.total for s in samples]
    median = statistics.median(totals)
    ok = median <= TARGET_REPLACE_MEDIAN_S
    print(
        f"  median {median:.2f} s, p95 {percentile(totals, 0.95):.2f} s, max {max(totals):.2f} s   "
        f"target median ≤ {TARGET_REPLACE_MEDIAN_S:.0f} s   {verdict(ok)}"
    )
    steps = [d for d in (s.steps() for s in samples) if d is not None]
    print(f"  where it goes (medians over the {len(steps)} kills whose every step was seen):")
    for i, name in enumerate(STEPS):
        if steps:
            print(f"    {name:52s} {statistics.median(d[i] for d in steps):.2f} s")
    return ok


def run(clusters: int, services: int, replicas_per: int, kills: int) -> bool:
    """The whole benchmark; True when every target is met."""
    expected = clusters * services * replicas_per
    root = Path(tempfile.mkdtemp(prefix="polycloud-bench-"))
    model = Path(shutil.copy(MODEL, root / "iris.onnx"))
    fleet = root / "fleet.yaml"
    documents = fleet_documents(model, clusters, services, replicas_per)
    fleet.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    bench = Bench(root)
    print(
        f"polycloud runtime benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"home {bench.home}"
    )
    results = []
    try:
        with section("baseline: cold start of a bare `python -m polycloud.serving` to /v2/health/ready"):
            report_baseline(model, "idle")
        with section(
            f"(a) apply → all ready: {clusters} clusters × {services} services × {replicas_per} replicas"
        ):
            results.append(report_apply(bench, fleet, expected))
        with section("(c) memory per replica (RSS after one inference request each)"):
            results.append(report_memory(bench))
        with section("baseline again, what a replacement competes with"):
            report_baseline(model, f"with {expected} replicas and the control plane running")
        with section(f"(b) replacement after SIGKILL, {kills} kills (API polled at {1 / POLL_S:.0f} Hz)"):
            results.append(report_replacements(bench, kills))
        with section("stopping"):
            started = time.monotonic()
            bench.cli("down")
            took = time.monotonic() - started
            print(f"  `polycloud down` of {expected} replicas: {took:.2f} s (no target)")
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'all targets met' if all(results) else 'some targets missed'}")
    return all(results)


def main() -> None:
    """Parse the command line and run the benchmark; exit status 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--services", type=int, default=4, help="services per cluster")
    parser.add_argument("--replicas", type=int, default=2, help="replicas per service")
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    sys.exit(0 if run(args.clusters, args.services, args.replicas, args.kills) else 1)


if __name__ == "__main__":
    main()

"""Benchmark of managed training jobs (issue 7): what spot preemptions cost with and without checkpoints.

    .venv/bin/python bench/jobs_bench.py [--steps 200] [--step-ms 50] [--every 20] [--preemptions 3]
                                         [--state-mb 20]

Runs one real training job (`tests/controller/train_sgd.py`: numpy SGD, `--step-ms` of simulated
compute per step, a checkpoint of `--state-mb` MB every `--every` steps) three ways, one after the other,
each in a fresh home with the real job controller, store and local driver:

(a) on demand: `spot: false`, never preempted — the reference.
(b) spot with checkpoints: `spot: true`, `recovery: next-cheapest`, preempted `--preemptions` times at
    fixed wall-clock moments (every 30 % of the on-demand run's wall time) with a hard kill (grace 0:
    everything since the last checkpoint is lost); each restart carries the checkpoint to the other
    spot cluster and pays its egress.
(c) spot from scratch: the same, but the job keeps no checkpoint, so every restart starts at step 0.

Prints wall time, attempts, steps computed (useful + redone), checkpoint bytes moved and polycloud's own
`costUSD` (observed run time × hourly price × nodes + checkpoint egress) for each, and their ratios to
(a). Prices are those of an AWS p3.2xlarge in us-east-1 (on demand $3.06/h, spot $0.92/h), 2 nodes,
internet egress $0.09/GB. Runs are seconds long, so dollar figures are small; the ratios are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polycloud.catalog import load_catalog
from polycloud.controller.jobs import JobController
from polycloud.drivers.local.jobs import scan_jobs
from polycloud.drivers.registry import create_driver
from polycloud.services.applying import FleetService
from polycloud.state import Store
from polycloud.state.job_records import JobRunRecord

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "controller" / "train_sgd.py"
ON_DEMAND, SPOT, EGRESS = 3.06, 0.92, 0.09
CLUSTERS = {"spot-east": 0, "spot-west": 1, "ondemand": 2}


@dataclass(frozen=True)
class Figures:
    name: str
    wall_s: float
    attempts: int
    steps: int
    bytes_moved: int
    cost_usd: float
    """polycloud's `costUSD`: observed run time × hourly × nodes + checkpoint egress."""
    egress_usd: float

    def scaled_usd(self, scale: float) -> float:
        """The cost had every second of run time been `scale` seconds (egress does not scale)."""
        return (self.cost_usd - self.egress_usd) * scale + self.egress_usd


def cluster(name: str, index: int) -> dict[str, Any]:
    instance: dict[str, Any] = {"name": "p3.2xlarge", "vcpus": 8, "memoryGiB": 61, "hourlyUSD": ON_DEMAND}
    if name.startswith("spot"):
        instance["spotHourlyUSD"] = SPOT + index / 100  # spot-east is the cheapest, spot-west next
    spec = {
        "provider": f"site{index}",
        "region": name,
        "location": {"lat": 40.0 + index, "lon": -75.0 - index},
        "instances": [instance],
        "network": {"internetEgressUSDPerGB": EGRESS},
    }
    return {"apiVersion": "polycloud/v1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec}


def job(args: argparse.Namespace, *, spot: bool, checkpoints: bool, control: Path) -> dict[str, Any]:
    every = args.every if checkpoints else 0
    command = ["python", str(SCRIPT), "--steps", str(args.steps), "--every", str(every)]
    command += ["--step-ms", str(args.step_ms), "--state-mb", str(args.state_mb), "--control", str(control)]
    command += ["--trace-steps"]
    spec = {
        "resources": {"vcpus": 8},
        "nodes": 2,
        "hours": 1,
        "spot": spot,
        "command": command,
        "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
        "recovery": {"strategy": "next-cheapest", "maxRestarts": args.preemptions},
        "placement": {"clusters": ["spot-east", "spot-west"] if spot else ["ondemand"]},
    }
    if checkpoints:
        spec["checkpoint"] = {"everySeconds": args.every * args.step_ms / 1000}
    return {"apiVersion": "polycloud/v1", "kind": "Job", "metadata": {"name": "train"}, "spec": spec}


def run(name: str, doc: dict[str, Any], control: Path, preempt_at: list[float]) -> Figures:
    """Apply `doc` in a fresh home, preempt at the given seconds after the start, wait for the end."""
    home = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    store = Store.open(f"sqlite:///{home / 'state.db'}")
    catalog = load_catalog()
    controller = JobController(store, catalog, home, lambda k, c, h: create_driver(k, c, h), interval_s=0.05)
    loop = threading.Thread(target=controller.run, daemon=True)
    loop.start()
    try:
        docs = [cluster(n, i) for n, i in CLUSTERS.items()] + [doc]
        start = time.monotonic()
        FleetService(store, catalog).apply(docs, author="bench", message=name, dry_run=False)
        for at in preempt_at:
            time.sleep(max(0.0, start + at - time.monotonic()))
            wait_running(store)
            controller.preempt("train", grace_s=0)
        final = wait_final(store)
        wall = time.monotonic() - start
        trace = [json.loads(line) for line in (control / "trace.jsonl").read_text().splitlines()]
        steps = computed_steps(trace)
        cost = final.cost_usd(final.updated_at)
        return Figures(name, wall, len(final.attempts), steps, final.bytes_moved, cost, final.egress_usd)
    finally:
        controller.stop()
        loop.join(10)
        for c in CLUSTERS:
            for proc in scan_jobs(home, c).values():
                os.killpg(proc.pid, signal.SIGKILL)
        controller.close()
        store.close()
        shutil.rmtree(home, ignore_errors=True)


def wait_running(store: Store) -> None:
    while True:
        runs = store.job_runs("train")
        if runs and runs[-1].state == "running":
            return
        time.sleep(0.01)


def wait_final(store: Store) -> JobRunRecord:
    while True:
        runs = store.job_runs("train")
        if runs and runs[-1].final and runs[-1].latest and runs[-1].latest.ended_at:
            if runs[-1].state != "succeeded":
                sys.exit(f"the job ended {runs[-1].state}: {runs[-1].message}")
            return runs[-1]
        time.sleep(0.02)


def computed_steps(trace: list[dict[str, Any]]) -> int:
    """Steps computed over all attempts, redone ones included: each attempt's last step minus its start."""
    total = 0
    for start in (t for t in trace if t["event"] == "start"):
        reached = [t["step"] for t in trace if t["event"] == "step" and t["attempt"] == start["attempt"]]
        total += max(reached, default=start["resumed_from"]) - start["resumed_from"]
    return total


def show(figures: list[Figures], args: argparse.Namespace) -> None:
    base = figures[0]
    scale = 3600 / (args.steps * args.step_ms / 1000)
    print(
        f"\njob: {args.steps} steps x {args.step_ms:g} ms, {args.state_mb:g} MB checkpoint per {args.every} "
        f"steps, {args.preemptions} hard preemptions, 2 nodes; on demand ${ON_DEMAND}/h, spot ${SPOT}/h"
    )
    print(f"'at 1 h' scales run time x{scale:g} so the useful work takes one hour (egress not scaled)")
    head = f"{'run':30} {'wall s':>7} {'x':>5} {'attempts':>8} {'steps':>5} {'MB moved':>8}"
    print(f"{head} {'costUSD':>9} {'at 1 h':>8} {'x':>5}")
    for f in figures:
        row = f"{f.name:30} {f.wall_s:7.2f} {f.wall_s / base.wall_s:5.2f} {f.attempts:8d} {f.steps:5d}"
        scaled = f.scaled_usd(scale)
        ratio = scaled / base.scaled_usd(scale)
        print(f"{row} {f.bytes_moved / 1e6:8.1f} {f.cost_usd:9.6f} {scaled:8.3f} {ratio:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--step-ms", type=float, default=50.0)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--preemptions", type=int, default=3)
    parser.add_argument("--state-mb", type=float, default=20.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jobs-bench-control-"))
    try:
        controls = {k: work / k for k in ("ondemand", "checkpointed", "scratch")}
        for path in controls.values():
            path.mkdir()
        base = run(
            "on demand",
            job(args, spot=False, checkpoints=True, control=controls["ondemand"]),
            controls["ondemand"],
            [],
        )
        every_s = 0.3 * base.wall_s
        schedule = [every_s * (k + 1) for k in range(args.preemptions)]
        spot = run(
            f"spot, {args.preemptions} preemptions, ckpt",
            job(args, spot=True, checkpoints=True, control=controls["checkpointed"]),
            controls["checkpointed"],
            schedule,
        )
        scratch = run(
            f"spot, {args.preemptions} preemptions, scratch",
            job(args, spot=True, checkpoints=False, control=controls["scratch"]),
            controls["scratch"],
            schedule,
        )
        show([base, spot, scratch], args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

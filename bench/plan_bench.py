"""Benchmark of the placement planner: generated fleets up to 10,000 workloads over 100 clusters.

    .venv/bin/python bench/plan_bench.py            # 100 / 1,000 / 10,000 workloads x 10 / 100 clusters
    .venv/bin/python bench/plan_bench.py --quick    # 100 x 10 and 1,000 x 100 only
    .venv/bin/python bench/plan_bench.py --sizes 1000x100,10000x100 --repeat 3

Each fleet is generated from a fixed seed (so runs compare) and planned in a fresh child process, so
that memory figures belong to that fleet alone. Fleets mix catalog regions of AWS, GCP and Azure with
private sites (own instances, location, network prices), put small quotas on the accelerators of most
clusters so that the cheap ones bind, and have services of every pattern (with traffic sources,
latency budgets and reads of datasets, some EU-resident), plus jobs on spot and on demand.

For each fleet it prints:

* plan s — wall time of `plan_fleet_detailed(fleet, catalog)` (the optimiser and its explanations;
  the fleet is already validated: spec parsing is timed apart as "load s").
* peak MB — the child process's peak resident set size (`resource.getrusage(RUSAGE_SELF).ru_maxrss`)
  after the first plan: the whole process (interpreter, catalog, fleet and planning); "+plan MB" is how
  much planning raised that peak. (With --repeat, later plans only add allocator fragmentation.)
* optimum, LP bound — the plan's total and `plan_fleet_detailed(..., lower_bound=True).result.lower_bound`;
  greedy — a baseline written here: workloads in fleet order, each takes its cheapest choice that still
  fits the quota left; components — how many independent problems the planner solved, the largest.
* check — independent checks on the plan: quotas never exceeded, the pattern's roles present, and (for
  fleets up to `--check-up-to` workloads) the optimum equals that of one monolithic 0/1 program over all
  workloads and all (unpruned) choices solved by HiGHS with a zero gap, i.e. decomposition and dominance
  pruning lose nothing.

Targets (issue 17): 1,000 x 100 in <= 0.6 s; 10,000 x 100 in <= 10 s and <= 400 MB (issue 2 set
1,000 x 100 <= 500 MB); always exactly optimal (optimum <= greedy when both place as many workloads,
optimum >= LP bound - 1e-6). Wall times depend on what else the machine runs: the load average is
printed before and after, and figures compare only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highspy
import numpy as np
from fleetgen import generate  # a sibling of this script: run as `python bench/plan_bench.py`

from polycloud.catalog import load_catalog
from polycloud.placement import plan_fleet_detailed
from polycloud.placement.choices import Choice, Problem, QuotaKey
from polycloud.placement.planning import quota_caps
from polycloud.placement.sites import build_site
from polycloud.services.documents import documents_to_fleet

FULL = [(100, 10), (100, 100), (1_000, 10), (1_000, 100), (10_000, 10), (10_000, 100)]
QUICK = [(100, 10), (1_000, 100)]
EPS = 1e-6
TIME_TARGETS = {(1_000, 100): 0.6, (10_000, 100): 10.0}
MEMORY_TARGETS_MB = {(1_000, 100): 500.0, (10_000, 100): 400.0}


def greedy(problems: list[Problem], caps: dict[QuotaKey, float]) -> tuple[int, float]:
    """Workloads in order; each takes its cheapest choice that fits the quota left. (placed, cost)."""
    left = dict(caps)
    placed, total = 0, 0.0
    for p in problems:
        best = _greedy_one(p, left)
        if best is None:
            continue
        for c in best:
            if c.quota_key is not None:
                left[c.quota_key] -= c.usage
        placed += 1
        total += sum(c.cost for c in best)
    return placed, total


def _fits(c: Choice, left: dict[QuotaKey, float]) -> bool:
    return c.quota_key is None or c.usage <= left[c.quota_key] + 1e-9


def _greedy_one(p: Problem, left: dict[QuotaKey, float]) -> tuple[Choice, ...] | None:
    active = sorted((c for c in p.choices["active"] if _fits(c, left)), key=lambda c: c.cost)
    if len(p.roles) == 1:
        return (active[0],) if active else None
    if p.pattern == "active-active":
        second = active
    else:
        second = sorted((c for c in p.choices[p.roles[1]] if _fits(c, left)), key=lambda c: c.cost)
    if not second:
        return None
    best: tuple[Choice, ...] | None = None
    best_cost = float("inf")
    for a in active:
        if a.cost + second[0].cost >= best_cost:
            break
        for b in second:
            if a.cost + b.cost >= best_cost:
                break
            if _compatible(p, a, b):
                best, best_cost = (a, b), a.cost + b.cost
                break
    return best


def _compatible(p: Problem, a: Choice, b: Choice) -> bool:
    if p.pattern == "burst":
        return a.cluster != b.cluster
    if p.providers[a.cluster] == p.providers[b.cluster]:
        return False
    if p.pattern == "active-active":
        return all(a.cluster in s or b.cluster in s for s in p.coverage)
    return True


# -- independent checks -------------------------------------------------------------------------------


def quota_violations(problems: list[Problem], plan: dict[str, Any], caps: dict[QuotaKey, float]) -> list[str]:
    """Quotas exceeded, or roles missing, in the plan (recomputing each assignment's quota use)."""
    by_name = {p.name: p for p in problems}
    used: dict[QuotaKey, float] = defaultdict(float)
    problems_found = []
    for placement in plan["placements"]:
        p = by_name[placement["workload"]]
        roles = sorted(a["role"] for a in placement["assignments"])
        if roles != sorted(p.roles):
            problems_found.append(f"{p.name}: roles {roles}")
        for a in placement["assignments"]:
            choice = next((c for c in p.choices.get(a["role"], []) if c.cluster == a["cluster"]), None)
            if choice is None:
                problems_found.append(f"{p.name}: {a['role']} in {a['cluster']} is not an allowed choice")
            elif choice.quota_key is not None:
                used[choice.quota_key] += choice.usage
    problems_found += [f"quota {k} used {v:g} > {caps[k]:g}" for k, v in used.items() if v > caps[k] + 1e-9]
    return problems_found


def monolithic_optimum(problems: list[Problem], caps: dict[QuotaKey, float]) -> tuple[int, float]:
    """(placed, cost) of one 0/1 program over every workload and every unpruned choice (HiGHS, gap 0).

    Places as many workloads as possible, then minimises the cost of that many — the model's objective.
    """
    costs: list[float] = []
    rows: list[tuple[list[int], list[float], float, float]] = []
    quota: dict[QuotaKey, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    slack: list[int] = []
    for p in problems:
        u = len(costs)
        costs.append(0.0)
        slack.append(u)
        cols: list[tuple[int, Choice]] = []
        for role in dict.fromkeys(p.roles):
            need = float(p.roles.count(role))
            idx = []
            for c in p.choices[role]:
                idx.append(len(costs))
                cols.append((len(costs), c))
                costs.append(c.cost)
                if c.quota_key is not None:
                    quota[c.quota_key][0].append(cols[-1][0])
                    quota[c.quota_key][1].append(c.usage)
            rows.append(([*idx, u], [1.0] * len(idx) + [need], need, need))
        group: dict[str, list[int]] = defaultdict(list)
        for i, c in cols:
            if p.pattern in ("active-active", "active-passive"):
                group[p.providers[c.cluster]].append(i)
            elif p.pattern == "burst":
                group[c.cluster].append(i)
        rows.extend(
            (idx, [1.0] * len(idx), -highspy.kHighsInf, 1.0) for idx in group.values() if len(idx) > 1
        )
        for covered in p.coverage:
            idx = [i for i, c in cols if c.cluster in covered]
            rows.append(([*idx, u], [1.0] * (len(idx) + 1), 1.0, highspy.kHighsInf))
    rows.extend((idx, coef, -highspy.kHighsInf, caps[key]) for key, (idx, coef) in quota.items())
    phase1 = [0.0] * len(costs)
    for u in slack:
        phase1[u] = 1.0
    unplaced_values = _solve_binary(phase1, rows)
    unplaced = round(sum(unplaced_values[u] for u in slack))
    values = _solve_binary(costs, [*rows, (slack, [1.0] * len(slack), -highspy.kHighsInf, unplaced + 0.5)])
    return len(problems) - unplaced, float(np.dot(costs, values))


def _solve_binary(costs: list[float], rows: list[tuple[list[int], list[float], float, float]]) -> list[float]:
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 1e-7)
    n = len(costs)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, len(rows)
    lp.col_cost_ = np.asarray(costs, dtype=np.float64)
    lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
    lp.row_lower_ = np.asarray([r[2] for r in rows], dtype=np.float64)
    lp.row_upper_ = np.asarray([r[3] for r in rows], dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, len(rows)
    starts = np.zeros(len(rows) + 1, dtype=np.int32)
    starts[1:] = np.cumsum([len(r[0]) for r in rows])
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = np.asarray([i for r in rows for i in r[0]], dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray([v for r in rows for v in r[1]], dtype=np.float64)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"monolithic program not solved: {h.getModelStatus()}")
    return list(h.getSolution().col_value)


# -- one fleet, in a child process ----------------------------------------------------------------------


@dataclass
class Figures:
    """What one fleet measured; None where the child did not get that far (it ran out of time)."""

    workloads: int
    clusters: int
    load_s: float | None = None
    plan_s: float | None = None
    peak_mb: float | None = None
    plan_mb: float | None = None
    placed: int | None = None
    optimum: float | None = None
    components: int | None = None
    largest: int | None = None
    bound_s: float | None = None
    lower_bound: float | None = None
    greedy_placed: int | None = None
    greedy: float | None = None
    violations: list[str] | None = None
    monolithic_placed: int | None = None
    monolithic: float | None = None
    timed_out: float | None = None


def peak_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(**figures: Any) -> None:
    """Hand figures to the parent as soon as they are known (one JSON object per line)."""
    print(json.dumps(figures), flush=True)


def measure(workloads: int, clusters: int, check_up_to: int, repeat: int) -> None:
    """Generate, validate and plan one fleet, emitting figures stage by stage."""
    catalog = load_catalog()
    docs = generate(workloads, clusters, catalog)
    start = time.perf_counter()
    fleet = documents_to_fleet(docs, catalog)
    emit(load_s=time.perf_counter() - start)
    before = peak_mb()
    times = []
    outcome = None
    after = 0.0
    for _ in range(repeat):
        outcome = None  # let the previous plan go first: the peak is one plan's, not two
        start = time.perf_counter()
        outcome = plan_fleet_detailed(fleet, catalog)
        times.append(time.perf_counter() - start)
        # The first plan's peak: later ones only add what the allocator could not hand back.
        after = after or peak_mb()
    assert outcome is not None
    plan = outcome.plan.to_json()
    emit(
        plan_s=min(times),
        peak_mb=after,
        plan_mb=after - before,
        placed=len(plan["placements"]),
        optimum=plan["totalUSD"],
        components=outcome.result.components,
        largest=outcome.result.largest_component,
    )
    caps = quota_caps({name: build_site(c, catalog) for name, c in fleet.clusters.items()})
    greedy_placed, greedy_cost = greedy(outcome.problems, caps)
    emit(
        greedy_placed=greedy_placed,
        greedy=greedy_cost,
        violations=quota_violations(outcome.problems, plan, caps),
    )
    start = time.perf_counter()
    bounded = plan_fleet_detailed(fleet, catalog, lower_bound=True)
    emit(bound_s=time.perf_counter() - start, lower_bound=bounded.result.lower_bound)
    if workloads <= check_up_to:
        mono_placed, mono = monolithic_optimum(outcome.problems, caps)
        emit(monolithic_placed=mono_placed, monolithic=mono)


def run_child(workloads: int, clusters: int, args: argparse.Namespace) -> Figures:
    """Measure one fleet in a fresh interpreter, so that peak memory is that fleet's alone."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        str(workloads),
        str(clusters),
        "--check-up-to",
        str(args.check_up_to),
        "--repeat",
        str(args.repeat),
    ]
    figures = Figures(workloads, clusters)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.timeout)
        stdout, failed = proc.stdout, proc.returncode != 0
        if failed:
            print(proc.stderr, file=sys.stderr)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        stdout, failed = (out.decode() if isinstance(out, bytes) else out), False
        figures.timed_out = args.timeout
    for line in stdout.splitlines():
        if line.startswith("{"):
            for key, value in json.loads(line).items():
                setattr(figures, key, value)
    if failed:
        figures.violations = [*(figures.violations or []), "the benchmark child failed (see stderr)"]
    return figures


# -- report ---------------------------------------------------------------------------------------------


def verdicts(f: Figures) -> list[tuple[str, bool]]:
    """Every target that applies to this fleet, with whether it was met (unknown counts as not met)."""
    out: list[tuple[str, bool]] = []
    key = (f.workloads, f.clusters)
    if key in TIME_TARGETS:
        out.append(
            (f"plan <= {TIME_TARGETS[key]:g} s", f.plan_s is not None and f.plan_s <= TIME_TARGETS[key])
        )
    if key in MEMORY_TARGETS_MB:
        limit = MEMORY_TARGETS_MB[key]
        out.append((f"peak <= {limit:g} MB", f.peak_mb is not None and f.peak_mb <= limit))
    if f.optimum is None or f.placed is None:
        out.append(("plan finished", False))
        return out
    scale = max(1.0, abs(f.optimum))
    bound_ok = f.lower_bound is not None and f.optimum >= f.lower_bound - EPS * scale
    out.append(("optimum >= LP bound", bound_ok))
    if f.greedy_placed is None or f.greedy is None:
        out.append(("greedy compared", False))
    elif f.greedy_placed == f.placed:
        out.append(("optimum <= greedy", f.optimum <= f.greedy + EPS * scale))
    else:
        out.append(("placed > greedy's", f.placed > f.greedy_placed))
    out.append(("quotas and roles sound", f.violations == []))
    if f.monolithic is not None:
        same = f.monolithic_placed == f.placed and abs(f.monolithic - f.optimum) <= EPS * scale
        out.append(("= monolithic MILP", same))
    return out


def _fmt(value: float | int | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def report(figures: list[Figures]) -> bool:
    columns = [
        ("workloads", "workloads", ",", 9),
        ("clusters", "clusters", "", 8),
        ("load s", "load_s", ".2f", 7),
        ("plan s", "plan_s", ".2f", 7),
        ("peak MB", "peak_mb", ".0f", 8),
        ("+plan MB", "plan_mb", ".0f", 8),
        ("placed", "placed", ",", 7),
        ("optimum $", "optimum", ",.2f", 15),
        ("LP bound $", "lower_bound", ",.2f", 15),
        ("greedy $", "greedy", ",.2f", 15),
        ("gr.placed", "greedy_placed", ",", 9),
        ("comps", "components", ",", 6),
        ("largest", "largest", ",", 7),
        ("bound s", "bound_s", ".2f", 7),
    ]
    header = " ".join(f"{title:>{width}}" for title, _, _, width in columns)
    print(header)
    print("-" * len(header))
    for f in figures:
        print(" ".join(_fmt(getattr(f, attr), spec, width) for _, attr, spec, width in columns))
    print()
    all_ok = True
    for f in figures:
        results = verdicts(f)
        all_ok &= all(ok for _, ok in results)
        line = "; ".join(f"{'PASS' if ok else 'FAIL'} {what}" for what, ok in results)
        print(f"{f.workloads:>6,} x {f.clusters:<3} {line}")
        if f.timed_out is not None:
            print(f"{'':>12} stopped after {f.timed_out:g} s (--timeout); '-' marks what it did not reach")
        if f.monolithic is not None and f.monolithic_placed is not None:
            print(f"{'':>12} monolithic MILP: {f.monolithic_placed:,} placed, ${f.monolithic:,.2f}")
        for v in (f.violations or [])[:5]:
            print(f"{'':>12} violation: {v}")
        if f.violations and len(f.violations) > 5:
            print(f"{'':>12} ... and {len(f.violations) - 5} more violations")
    print()
    print("plan s: plan_fleet_detailed() on the validated fleet (best of --repeat); load s: spec validation.")
    print("peak MB: the child process's peak RSS (ru_maxrss: interpreter + catalog + fleet + planning);")
    print("+plan MB: how much planning raised that peak. bound s: the run with lower_bound=True.")
    print("OVERALL:", "PASS" if all_ok else "FAIL")
    return all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="only 100 x 10 and 1,000 x 100")
    parser.add_argument(
        "--sizes",
        type=sizes,
        metavar="WxC,...",
        help="only these fleets, e.g. 1000x100,10000x100 (workloads x clusters)",
    )
    parser.add_argument(
        "--check-up-to",
        type=int,
        default=1_000,
        metavar="N",
        help="compare with a monolithic MILP for fleets of at most N workloads (default 1000)",
    )
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="plan N times, report the best")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="give up on a fleet after S seconds (reported as FAIL; default 600)",
    )
    parser.add_argument("--one", nargs=2, type=int, metavar=("WORKLOADS", "CLUSTERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure(args.one[0], args.one[1], args.check_up_to, args.repeat)
        return 0
    figures = []
    print(f"load average before: {load()}")
    for workloads, clusters in args.sizes or (QUICK if args.quick else FULL):
        print(f"planning {workloads:,} workloads over {clusters} clusters ...", file=sys.stderr, flush=True)
        figures.append(run_child(workloads, clusters, args))
    print(f"load average after: {load()} ({os.cpu_count()} cores)")
    return 0 if report(figures) else 1


def sizes(text: str) -> list[tuple[int, int]]:
    """`1000x100,10000x100` → [(1000, 100), (10000, 100)]."""
    out = []
    for item in text.split(","):
        workloads, _, clusters = item.strip().partition("x")
        out.append((int(workloads), int(clusters)))
    return out


def load() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was (others' runs included)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())

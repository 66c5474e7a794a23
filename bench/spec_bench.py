"""Benchmark of spec loading: reading and validating a large fleet, in-process and as `polycloud validate`.

    .venv/bin/python bench/spec_bench.py [--runs 7] [--workloads 1000] [--clusters 100] [--baseline REV ...]

The fleet is `bench/fleetgen.py`'s (the planner benchmark's generator, fixed seed), written two ways into
a temporary folder: "generated" — the documents as generated (`yaml.safe_dump_all`, block style); and
"normalised" — every document as the control plane stores it, defaults filled in (`model_dump`), about
twice as many lines. Figures are wall seconds, min / median / max over `--runs` runs:

- in-process: `read_documents` (parse, positions, pydantic) by the loader as it is, which takes
  libyaml's fast path (`spec.fastyaml`), against the same loader forced down its reference path
  (PyYAML's pure-Python composer, which was the only path before); and `load_fleet` (adds the
  cross-document checks). Both paths must give the same fleet and issues, or the bench fails.
- whole commands, each a fresh process (the `polycloud` console script) from the repository root, its
  bytecode cached in a temporary folder (written by an uncounted warm-up run), interleaved run by run
  beside the floor `python -c pass`: `polycloud validate` of each fleet file and of `examples/fleet/`.
  `--baseline REV` (repeatable) also runs them on `git archive REV src` (first on PYTHONPATH), so that
  before and after are measured in the same run on the same machine, and prints the ratios of medians.

Targets (issue 17), on the wall medians: `validate` of the 1,000-workload fleet ≤ 1.0 s,
`validate examples/fleet/` ≤ 0.5 s. Exit status 1 when a command fails or the two paths disagree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import TypeVar

import yaml
from fleetgen import generate  # a sibling of this script: run as `python bench/spec_bench.py`

from polycloud.catalog import load_catalog
from polycloud.errors import SpecError, SpecIssue
from polycloud.services.documents import documents_to_fleet, fleet_to_documents
from polycloud.spec import Fleet, load_fleet, loading

ROOT = Path(__file__).resolve().parents[1]
POLYCLOUD = Path(sys.executable).with_name("polycloud")
EXAMPLES = "examples/fleet/"
TARGETS_S = {"generated": 1.0, EXAMPLES: 0.5}
T = TypeVar("T")


@dataclass
class Case:
    """A command to time, and its wall and CPU seconds."""

    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    target_s: float | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def spread(xs: list[float]) -> str:
    return f"{min(xs):7.3f} {statistics.median(xs):7.3f} {max(xs):7.3f}"


def write_fleets(folder: Path, workloads: int, clusters: int) -> dict[str, Path]:
    catalog = load_catalog()
    docs = generate(workloads, clusters, catalog)
    normalised = fleet_to_documents(documents_to_fleet(docs, catalog))
    paths = {"generated": folder / "generated.yaml", "normalised": folder / "normalised.yaml"}
    paths["generated"].write_text(yaml.safe_dump_all(docs, sort_keys=False))
    paths["normalised"].write_text(yaml.safe_dump_all(normalised, sort_keys=False))
    return paths


def read_reference(path: Path) -> tuple[Fleet, list[SpecIssue]]:
    """`read_documents` of one file, every document through the reference (pure-Python) path."""
    fleet, issues = Fleet(), list[SpecIssue]()
    text = path.read_bytes().decode()
    for data, positions in loading._reference_documents(path, text, issues, ()):
        loading.add_document(data, positions, fleet, issues)
    return fleet, issues


def timed(fn: Callable[[], T], runs: int) -> tuple[list[float], T]:
    """Wall seconds of `runs` calls of `fn`, and what the last one returned."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def in_process(paths: dict[str, Path], runs: int) -> bool:
    catalog = load_catalog()
    ok = True
    print(
        f"\nin-process, {runs} runs each              {'wall s: min     med     max':>27}  speed-up (medians)"
    )
    for label, path in paths.items():
        fast_times, (fast_fleet, fast_issues) = timed(partial(loading.read_documents, [path]), runs)
        ref_times, (ref_fleet, ref_issues) = timed(partial(read_reference, path), max(1, runs // 2))
        load_times, _ = timed(partial(load_fleet, [path], catalog), runs)
        same = fast_issues == ref_issues and fast_fleet.documents() == ref_fleet.documents()
        ok &= same and not fast_issues
        up = statistics.median(ref_times) / statistics.median(fast_times)
        print(f"{label:<10} read_documents, fast path   {spread(fast_times)}  {up:5.1f}x")
        print(f"{'':<10} read_documents, reference   {spread(ref_times)}")
        print(f"{'':<10} load_fleet (with references) {spread(load_times)}")
        print(
            f"{'':<10} same fleet and issues both ways: {'yes' if same else 'NO'}; issues: {len(fast_issues)}"
        )
    return ok


def run(case: Case) -> None:
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            case.argv,
            cwd=ROOT,
            env=case.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            sys.exit(f"`{case.label}` failed:\n{stderr.read().decode(errors='replace')[-2000:]}")
    case.wall.append(elapsed)
    case.cpu.append(usage.ru_utime + usage.ru_stime)


def baseline_src(rev: str, into: Path) -> Path:
    """`src/` of commit `rev`, extracted under `into`."""
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True)
    into.mkdir(parents=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def environment(folder: Path) -> dict[str, str]:
    """This process's environment without POLYCLOUD_*, a home of its own, and compiled bytecode cached
    under `folder` (as an installed polycloud has it, whatever PYTHONDONTWRITEBYTECODE says here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | {"PYTHONPYCACHEPREFIX": str(folder / "pycache"), "POLYCLOUD_HOME": str(folder / "home")}


def commands(paths: dict[str, Path], runs: int, baselines: list[str], folder: Path) -> None:
    env = environment(folder)
    targets = [(label, str(path)) for label, path in paths.items()] + [(EXAMPLES, EXAMPLES)]
    cases = [Case("python -c pass (floor)", [sys.executable, "-c", "pass"], env)]
    variants = [("", env, True)] + [
        (f" [{rev}]", env | {"PYTHONPATH": str(baseline_src(rev, folder / f"baseline-{i}"))}, False)
        for i, rev in enumerate(baselines)
    ]
    for label, target in targets:
        for suffix, variant_env, current in variants:
            target_s = TARGETS_S.get(label) if current else None
            argv = [str(POLYCLOUD), "validate", target]
            cases.append(Case(f"validate {label}{suffix}", argv, variant_env, target_s))
    for case in cases:  # one warm-up each (page cache, bytecode), not counted
        run(case)
        case.wall.clear()
        case.cpu.clear()
    for _ in range(runs):
        for case in cases:
            run(case)
    width = max(len(c.label) for c in cases)
    print(f"\nwhole commands, {runs} runs each, interleaved")
    wall, cpu = "wall s: min     med     max", "cpu s: min     med     max"
    print(f"{'command':<{width}}  {wall:>27}  {cpu:>26}  target")
    for case in cases:
        verdict = ""
        if case.target_s is not None:
            passed = statistics.median(case.wall) <= case.target_s
            verdict = f"≤ {case.target_s:.2f} s  {'PASS' if passed else 'FAIL'}"
        print(f"{case.label:<{width}}  {spread(case.wall):>27}  {spread(case.cpu):>26}  {verdict}")
    by_label = {c.label: c for c in cases}
    for rev in baselines:
        print(f"\nratio of medians to [{rev}] (wall, cpu)")
        for label, _ in targets:
            now, then = by_label[f"validate {label}"], by_label[f"validate {label} [{rev}]"]
            ratios = [
                statistics.median(a) / statistics.median(b)
                for a, b in ((now.wall, then.wall), (now.cpu, then.cpu))
            ]
            print(f"validate {label:<{width - 9}}  {ratios[0]:5.2f}  {ratios[1]:5.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="counted runs of each measure")
    parser.add_argument("--workloads", type=int, default=1_000)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument(
        "--baseline", metavar="REV", action="append", default=[], help="also run git REV's src/ (repeatable)"
    )
    parser.add_argument("--no-commands", action="store_true", help="in-process figures only")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="spec-bench-") as tmp:
        folder = Path(tmp)
        paths = write_fleets(folder, args.workloads, args.clusters)
        for label, path in paths.items():
            text = path.read_text()
            print(
                f"{label}: {args.workloads:,} workloads, {args.clusters} clusters, "
                f"{text.count(chr(10)):,} lines, {len(text.encode()):,} bytes"
            )
        try:
            ok = in_process(paths, args.runs)
        except SpecError as e:
            print(e)
            ok = False
        if not args.no_commands:
            commands(paths, args.runs, args.baseline, folder)
    print(f"\nload average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

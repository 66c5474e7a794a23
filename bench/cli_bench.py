"""Benchmark of the CLI's start-up: how long the commands a person types take as whole processes.

    .venv/bin/python bench/cli_bench.py [--runs 10] [--warmup 1] [--no-status] [--baseline GIT_REF ...]

Each command runs as a fresh process (`polycloud`, the console script next to this interpreter), from
the repository root, in a temporary home with its own free ports, its compiled bytecode cached in a
temporary folder (written by the warm-up run, read by the counted ones, as an installed polycloud reads
its own); its output is read and thrown away.
The commands are interleaved run by run (A B C … A B C …) so that a machine that speeds up or slows
down during the run shifts every figure alike. Figures are wall and CPU (user + system) seconds, min /
median / max over `--runs` counted runs after `--warmup` uncounted ones, with the median wall time
above the floor beside them:

- floor: `python -c pass` — the interpreter alone, what no command can beat;
- `polycloud --help`;
- `polycloud validate examples/fleet/`;
- `polycloud plan --json examples/fleet/`;
- `polycloud status` against a control plane this bench starts (`polycloud up --detach`) in the
  temporary home and stops at the end (`polycloud down`); `--no-status` skips it.

`--baseline GIT_REF` (repeatable) also runs every command with the `src/` of that commit (`git archive`,
first on PYTHONPATH), interleaved with the working tree's, and prints the ratios of the medians: a
comparison that holds on a machine shared with other work.

Targets (issue 17), printed beside the medians: `--help` ≤ 0.25 s, `validate examples/fleet/` ≤ 0.5 s,
`status` ≤ 0.4 s. A command that exits with another status than expected fails the bench (exit 1).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLYCLOUD = Path(sys.executable).with_name("polycloud")
FLEET = "examples/fleet/"
GIVE_UP_S = 120.0
"""How long one command may take before the bench gives up on it."""


@dataclass
class Case:
    """One command to time, the exit status it must end with, and its target (seconds) if it has one."""

    label: str
    argv: list[str]
    target_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Variables added to the bench's environment for this command (the baseline's PYTHONPATH)."""
    expect_rc: int = 0
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(home: Path, pycache: Path) -> dict[str, str]:
    """This process's environment without POLYCLOUD_*, with a home and free ports of its own, and compiled
    bytecode cached under `pycache` (as an installed polycloud has it, whatever PYTHONDONTWRITEBYTECODE
    says here, and without writing into the source tree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | {
        "PYTHONPYCACHEPREFIX": str(pycache),
        "POLYCLOUD_HOME": str(home),
        "POLYCLOUD_API_ADDR": f"127.0.0.1:{free_port()}",
        "POLYCLOUD_GATEWAY_ADDR": f"127.0.0.1:{free_port()}",
        "COLUMNS": "120",
    }


def baseline_src(ref: str, into: Path) -> Path:
    """`src/` of commit `ref`, extracted under `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run `argv` to its end; (wall seconds, CPU seconds (user + system), exit status, its stderr's end).

    The CPU time is the process's own (and its children's), from the kernel's accounting when it is
    reaped: it moves less than the wall time when other work shares the machine.
    """
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
        timer = threading.Timer(GIVE_UP_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        tail = stderr.read().decode(errors="replace")[-2000:]
    return elapsed, usage.ru_utime + usage.ru_stime, proc.returncode, tail


def measure(cases: list[Case], env: dict[str, str], runs: int, warmup: int) -> None:
    """Run every case `warmup + runs` times, interleaved; keep the counted wall and CPU times."""
    for i in range(warmup + runs):
        for case in cases:
            wall, cpu, rc, stderr = run(case.argv, env | case.env)
            if rc != case.expect_rc:
                sys.exit(f"`{case.label}` exited {rc}, expected {case.expect_rc}:\n{stderr}")
            if i >= warmup:
                case.wall.append(wall)
                case.cpu.append(cpu)


def spread(xs: list[float]) -> str:
    return f"{min(xs):6.3f} {statistics.median(xs):6.3f} {max(xs):6.3f}"


def report(title: str, cases: list[Case]) -> None:
    """One table: wall and CPU seconds (min, median, max), the wall median above the floor (the first
    case), and the target of the wall median."""
    floor = statistics.median(cases[0].wall)
    width = max(len(c.label) for c in cases)
    print(f"\n{title}")
    print(
        f"{'command':<{width}}  {'wall s: min    med    max':>21}  {'cpu s: min    med    max':>20}  "
        f"{'med−floor':>9}  target (wall median)"
    )
    for case in cases:
        above = "" if case is cases[0] else f"{statistics.median(case.wall) - floor:9.3f}"
        verdict = ""
        if case.target_s is not None:
            passed = statistics.median(case.wall) <= case.target_s
            verdict = f"≤ {case.target_s:.2f} s  {'PASS' if passed else 'FAIL'}"
        print(
            f"{case.label:<{width}}  {spread(case.wall):>21}  {spread(case.cpu):>20}  {above:>9}  {verdict}"
        )


def compare(cases: list[Case], refs: list[str]) -> None:
    """Each command's medians against each baseline's (its cases labelled `[REF]`)."""
    by_label = {c.label: c for c in cases}
    print("\nratio of medians (wall, cpu) to each baseline")
    for case in cases:
        if f"{case.label} [{refs[0]}]" not in by_label:
            continue  # the floor, or a baseline's own case
        figures = []
        for ref in refs:
            base = by_label[f"{case.label} [{ref}]"]
            wall = statistics.median(case.wall) / statistics.median(base.wall)
            cpu = statistics.median(case.cpu) / statistics.median(base.cpu)
            figures.append(f"{ref}: {wall:.2f}, {cpu:.2f}")
        print(f"  {case.label}  " + "   ".join(figures))


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10, help="counted runs of each command")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs first")
    parser.add_argument("--no-status", action="store_true", help="skip `status` (no control plane)")
    parser.add_argument(
        "--baseline", metavar="GIT_REF", action="append", default=[], help="also run the src/ of this commit"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        env = environment(Path(tmp) / "home", Path(tmp) / "pycache")
        variants: list[tuple[str, dict[str, str]]] = [("", {})]
        for i, ref in enumerate(args.baseline):
            src = baseline_src(ref, Path(tmp) / f"baseline-{i}")
            variants.append((f" [{ref}]", {"PYTHONPATH": str(src)}))

        def cases(label: str, argv: list[str], target_s: float | None = None) -> list[Case]:
            return [Case(label + suffix, argv, target_s, extra) for suffix, extra in variants]

        floor = Case("python -c pass (floor)", [sys.executable, "-c", "pass"])
        alone = [
            floor,
            *cases("polycloud --help", [str(POLYCLOUD), "--help"], 0.25),
            *cases(f"polycloud validate {FLEET}", [str(POLYCLOUD), "validate", FLEET], 0.5),
            *cases(f"polycloud plan --json {FLEET}", [str(POLYCLOUD), "plan", "--json", FLEET]),
        ]
        served = [
            Case("python -c pass (floor)", [sys.executable, "-c", "pass"]),
            *cases("polycloud status", [str(POLYCLOUD), "status"], 0.4),
        ]
        print(f"{args.runs} runs each after {args.warmup} warm-up, interleaved; {os.cpu_count()} CPUs")
        print(f"load average before: {load()}", flush=True)
        measure(alone, env, args.runs, args.warmup)
        if not args.no_status:
            try:  # `down` at the end even if `up` fails half-way
                _, _, rc, stderr = run([str(POLYCLOUD), "up", "--detach"], env)
                if rc != 0:
                    sys.exit(f"`polycloud up --detach` exited {rc}:\n{stderr}")
                measure(served, env, args.runs, args.warmup)
            finally:
                _, _, rc, stderr = run([str(POLYCLOUD), "down"], env)
                if rc != 0:
                    print(f"`polycloud down` exited {rc}:\n{stderr}", file=sys.stderr)
    report("no control plane running", alone)
    if not args.no_status:
        report("against a control plane started in the same home (`polycloud up --detach`)", served)
    if args.baseline:
        compare(alone + ([] if args.no_status else served), args.baseline)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()

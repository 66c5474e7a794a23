"""The figures of bench/llm_bench.py: what each run measured (`Results`), the table, the ramp, the
targets with PASS/FAIL, and the JSON summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm_streams import Batch

DIRECT, GATEWAY, LITELLM = "direct", "gateway", "LiteLLM"
LONG_STREAMS = 160
"""Phase 5: this many streams at once, each ~12 s (48 tokens at SLOW_PACE_MS): more than the gateway's
64 pooled connections per replica (`GatewaySettings.max_connections_per_replica`) can carry at once
over two replicas, though the replicas themselves take them all."""


@dataclass(frozen=True)
class Mode:
    """How much the run measures."""

    rounds: int
    """Of phases 1 and 2: short rounds, the paths' order rotated each time, so that a stall of the shared
    machine falls on every path alike."""
    alone_streams: int
    """Per path per round, one at a time."""
    latency_streams: int
    """Per path per round, `--concurrency` at a time."""
    levels: tuple[int, ...]
    level_streams: int
    """Streams per path at each level: at least this many, and `per_client` per client."""
    per_client: int
    throughput_rounds: int
    throughput_s: float
    """Per path per round."""
    idle_s: float
    first_calls: int
    """Unmeasured streams per path and model before anything is measured."""
    long_streams: bool
    """Run phase 5."""


@dataclass
class Results:
    alone: dict[str, Batch] = field(default_factory=dict)
    latency: dict[str, Batch] = field(default_factory=dict)
    ramp: dict[int, dict[str, Batch]] = field(default_factory=dict)
    sustained: dict[str, int] = field(default_factory=dict)
    throughput: dict[str, Batch] = field(default_factory=dict)
    idle_cpu: dict[str, float | None] = field(default_factory=dict)
    long: dict[str, Batch] = field(default_factory=dict)
    long_counts: dict[str, float] = field(default_factory=dict)
    """The gateway's attempts by outcome and ejections during phase 5."""


# reporting


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or value != value else f"{value:,.{digits}f}"


Figure = tuple[str, Callable[[str], float | None], int, str]
"""A row of the table: its name, its value for a path, its digits, and how the gateway is compared with
LiteLLM on it: "lower", "higher", "nearer" (to direct's: ITL below the replicas' pace means tokens were
held back and sent in bursts) or "" (shown for context, not compared)."""


def figures(results: Results, args: argparse.Namespace) -> list[Figure]:
    alone, lat, thr = results.alone, results.latency, results.throughput
    c = args.concurrency

    def ttft(batches: dict[str, Batch], q: float) -> Callable[[str], float | None]:
        return lambda label: batches[label].ttft(q)

    def added(batches: dict[str, Batch], q: float) -> Callable[[str], float | None]:
        return lambda label: None if label == DIRECT else batches[label].ttft(q) - batches[DIRECT].ttft(q)

    table: list[Figure] = [
        ("TTFT p50, 1 stream (ms)", ttft(alone, 0.5), 2, "lower"),
        ("TTFT p99, 1 stream (ms)", ttft(alone, 0.99), 2, "lower"),
        ("added TTFT p50, 1 stream (ms)", added(alone, 0.5), 2, "lower"),
        ("added TTFT p99, 1 stream (ms)", added(alone, 0.99), 2, "lower"),
        (f"TTFT p50, {c} streams (ms)", ttft(lat, 0.5), 2, "lower"),
        (f"TTFT p99, {c} streams (ms)", ttft(lat, 0.99), 2, "lower"),
        (f"added TTFT p50, {c} streams (ms)", added(lat, 0.5), 2, "lower"),
        (f"added TTFT p99, {c} streams (ms)", added(lat, 0.99), 2, "lower"),
        (f"ITL p50, {c} streams (ms)", lambda label: lat[label].itl(0.5), 2, "nearer"),
        (f"ITL p99, {c} streams (ms)", lambda label: lat[label].itl(0.99), 2, "nearer"),
        (f"tokens coalesced, {c} streams (%)", lambda label: lat[label].coalesced * 100, 1, "lower"),
        ("streams sustained", lambda label: float(results.sustained.get(label, 0)), 0, "higher"),
        ("tokens/s at pace 0", lambda label: thr[label].tokens_per_s, 0, "higher"),
        ("proxy CPU s / 1k tokens, pace 0", lambda label: thr[label].cpu_per_1k, 3, "lower"),
        (f"proxy CPU s / 1k tokens, {c} paced", lambda label: lat[label].cpu_per_1k, 3, "lower"),
        ("proxy CPU idle (s per s)", lambda label: results.idle_cpu.get(label), 3, ""),
    ]
    long = results.long
    if long:
        table.append(
            (f"long streams failed (of {LONG_STREAMS})", lambda label: float(long[label].errors), 0, "lower")
        )
        table.append(("long streams TTFT p50 (ms)", lambda label: long[label].ttft(0.5), 0, "lower"))
    return table


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: Results, labels: list[str], args: argparse.Namespace, litellm_note: str | None) -> None:
    mode: Mode = args.mode
    table = figures(results, args)
    width = 36
    print("\n" + "figure".ljust(width) + "".join(label.rjust(12) for label in labels))
    for name, get, digits, _ in table:
        print(name.ljust(width) + "".join(fmt(get(label), digits).rjust(12) for label in labels))
    print(
        f"(streams sustained: the highest of {', '.join(map(str, mode.levels))} streams at a time with 0 "
        f"errors and TTFT p99 ≤ {args.ttft_bound_ms:g} ms; 0: none)"
    )

    print("\nramp: streams/s · tokens/s · TTFT p99 ms · errors")
    print("streams" + "".join(label.rjust(32) for label in labels))
    for level, batches in results.ramp.items():
        cells = [
            f"{b.streams_per_s:.0f} · {b.tokens_per_s:,.0f} · {b.ttft(0.99):.1f} · {b.errors}"
            if (b := batches.get(label)) is not None
            else "—"
            for label in labels
        ]
        print(f"{level:>7}" + "".join(cell.rjust(32) for cell in cells))

    print("\ntargets")
    for batches, load in ((results.alone, "1 stream"), (results.latency, f"{args.concurrency} streams")):
        p50 = batches[GATEWAY].ttft(0.5) - batches[DIRECT].ttft(0.5)
        p99 = batches[GATEWAY].ttft(0.99) - batches[DIRECT].ttft(0.99)
        print(f"  {verdict(p50 <= 1.0)}  gateway's added TTFT p50 ≤ 1 ms at {load}: {p50:+.2f} ms")
        print(f"  {verdict(p99 <= 5.0)}  gateway's added TTFT p99 ≤ 5 ms at {load}: {p99:+.2f} ms")
    if LITELLM not in labels:
        print(f"  n/a   gateway ahead of LiteLLM: LiteLLM was not measured ({litellm_note})")
        return
    for name, get, digits, compare in table:
        ours, theirs, direct = get(GATEWAY), get(LITELLM), get(DIRECT)
        if ours is None or theirs is None or not compare:
            continue
        note = ""
        if compare == "nearer" and direct is not None:
            ahead = abs(ours - direct) < abs(theirs - direct)
            note = f" (direct {fmt(direct, digits)}: nearer is ahead)"
        elif compare == "higher":
            ahead = ours > theirs or (ours == theirs == mode.levels[-1] and name == "streams sustained")
            note = " (tie)" if ours == theirs else ""
            note = " (both sustained every level tried)" if ours == theirs and ahead else note
        else:
            ahead = ours < theirs
        versus = f"{fmt(ours, digits)} against {fmt(theirs, digits)}{note}"
        print(f"  {verdict(ahead)}  gateway ahead of LiteLLM on {name}: {versus}")


def summary(results: Results, labels: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The figures as JSON (`--json FILE`)."""
    out: dict[str, Any] = {
        name: {label: get(label) for label in labels} for name, get, _, _ in figures(results, args)
    }
    out["ramp"] = {
        str(level): {
            label: {
                "streams_per_s": b.streams_per_s,
                "tokens_per_s": b.tokens_per_s,
                "ttft_p50_ms": b.ttft(0.5),
                "ttft_p99_ms": b.ttft(0.99),
                "itl_p99_ms": b.itl(0.99),
                "errors": b.errors,
                "proxy_cpu_s_per_1k_tokens": b.cpu_per_1k,
            }
            for label, b in batches.items()
        }
        for level, batches in results.ramp.items()
    }
    out["coalesced"] = {label: results.latency[label].coalesced for label in labels}
    out["long_streams"] = {
        label: {
            "answered": len(b.ok),
            "failed": b.errors,
            "ttft_p50_ms": b.ttft(0.5),
            "ttft_p90_ms": b.ttft(0.9),
        }
        for label, b in results.long.items()
    }
    out["long_streams_gateway_counts"] = results.long_counts
    out["itl_p999_ms"] = {label: results.latency[label].itl(0.999) for label in labels}
    return out

"""LLM streaming benchmark: time to first token, inter-token latency, concurrent streams and proxy CPU,
straight to the replicas, through polycloud's gateway and through LiteLLM's proxy, over the same replicas.

    .venv/bin/python bench/llm_bench.py [--quick] [--no-litellm] [--work DIR] [--json FILE]
        [--pace-ms 10] [--tokens 48] [--concurrency 8] [--ttft-bound-ms 250]

All on 127.0.0.1, in one run:

- polycloud's built-in LLM runtime (`polycloud.serving.llm`), its model trained here from the shipped
  docstrings, written twice: streaming a token every `--pace-ms` (a GPU decoder's pace: a 48-token
  answer lasts about half a second), and as fast as it can (pace 0);
- four replica processes (`python -m polycloud.serving --protocol openai`): two of each model, in
  clusters `a` and `b`, recorded as two `protocol: openai` Services (`chat`, `chat-fast`) in a SQLite
  state store;
- polycloud's gateway (`python -m polycloud.gateway`, plain HTTP, its defaults) reading that store;
- LiteLLM's proxy (`litellm[proxy]`, pinned, installed into `bench/.venv-litellm` on first run — see
  `bench/llm_litellm.py`), one worker, its config.yaml pointing `openai/<name>` at the same replicas;
  when it cannot be installed or started the bench says so and reports direct against the gateway;
- an aiohttp client here (uvloop when installed) streaming chat completions (`"stream": true`,
  temperature 0, `--tokens` tokens: the same answer on every path), timestamping each event as it
  arrives.

Three paths: direct (the client spreads streams over the two replicas itself: the baseline), the
gateway, LiteLLM. Every measurement runs the paths in turn, the order rotated from round to round and
level to level, each batch after a warm-up (`concurrency` short streams at once: connections open all
the way to the replicas); the proxies' CPU time (process and children, psutil) is read before and
after each batch.

1. TTFT alone: one stream at a time (4-token answers), 8 short rounds of each path pooled: time to
   first token p50/p99 (request sent → first event with text) and what each proxy adds to direct's;
2. latency: `--concurrency` streams at a time, full answers, 8 rounds: TTFT and added TTFT, inter-token
   latency p50/p99 (per token after the first: time since the token before it arrived; 0 for a token
   that came in the same read), the proxies' CPU per 1,000 tokens;
3. ramp: 8, 32, 64, 128, 256 streams at a time (each client starts a new stream as its last ends;
   max(200, 4 × level) streams per level): streams/s, tokens/s, TTFT, ITL, errors. A path sustains a
   level with 0 errors and TTFT p99 ≤ `--ttft-bound-ms` (250 ms: half a 48-token answer; stalls of
   100–200 ms on a shared 2-core machine make a tighter bound a coin toss); one with errors, or a TTFT
   p99 over three times the bound, is not taken further;
4. throughput: 32 streams at a time at the pace-0 model: tokens/s and the proxies' CPU seconds per
   1,000 tokens relayed;
5. long streams (not with `--quick`): 160 streams started at once, each ~12 s (a third model, 250 ms
   per token, two more replicas), once per path: answered and failed streams, TTFT, and the gateway's
   own count of attempts and ejections — more streams than the gateway's connection pool holds for two
   replicas (64 each).

Then the table and the targets — added TTFT p50 ≤ 1 ms and p99 ≤ 5 ms through the gateway (at one
stream and at `--concurrency`), the gateway ahead of LiteLLM on every figure — PASS/FAIL printed, exit
status 0 either way. `--quick`: fewer, shorter batches and levels 8 and 64 (under a minute once
LiteLLM is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import llm_litellm
from gateway_harness import Child, Fleet, cpu_seconds, free_port, stop_gateway, wait_ready, work_folder
from llm_report import DIRECT, GATEWAY, LITELLM, LONG_STREAMS, Mode, Results, report, summary
from llm_streams import PATH, Batch, chat_body, closed_loop

from polycloud.serving.llm import lm
from polycloud.serving.llm.training import shipped_texts
from polycloud.state import ReplicaRecord, Store, WorkloadInput, content_hash

uvloop: ModuleType | None
try:
    import uvloop  # a faster load generator when installed
except ImportError:
    uvloop = None

PACED, FAST, SLOW = "chat", "chat-fast", "chat-slow"
PROMPTS = (
    "How does the planner place workloads",
    "Explain how the gateway routes requests to replicas",
    "What happens when a cluster fails",
)
"""Candidate prompts; then the model's own words: the first whose answer runs to `--tokens` is used."""
ALONE_TOKENS = 4
THROUGHPUT_CONCURRENCY = 32
SLOW_PACE_MS = 250.0


FULL = Mode(8, 40, 60, (8, 32, 64, 128, 256), 200, 4, 3, 5.0, 5.0, 16, True)
QUICK = Mode(2, 10, 12, (8, 64), 16, 2, 1, 1.0, 0.5, 8, False)
GIVE_UP = 3.0
"""A path leaves the ramp after a level with errors or a TTFT p99 over GIVE_UP × the bound (a level
missed by less — a stall of the shared machine — does not end its ramp)."""


@dataclass
class Target:
    """One path: where its streams go, for each model, and the process whose CPU it costs."""

    label: str
    urls: dict[str, list[str]]
    pids: list[int] = field(default_factory=list)
    idle_cpu: float | None = None
    """CPU seconds per second the proxy spends while no stream runs (its background work)."""


# setting up


def train_models(work: Path, paces: dict[str, float]) -> lm.LanguageModel:
    """The model at each pace, written to work/SERVICE.json (as `python -m polycloud.serving.llm.training
    FILE --token-ms T` writes it), trained once from the shipped docstrings."""
    model = lm.train(shipped_texts())
    for service, pace in paces.items():
        (work / f"{service}.json").write_bytes(lm.dumps(dataclasses.replace(model, token_ms=pace)))
    return model


def replica_children(work: Path, models: dict[str, Path]) -> dict[str, list[Child]]:
    """Two replicas of each model (`--protocol openai`), in clusters a and b, their ports chosen now (so
    LiteLLM's config can be written before they start)."""
    replicas: dict[str, list[Child]] = {}
    for service, model in models.items():
        serve = ["polycloud.serving", "--model", str(model), "--name", service, "--protocol", "openai"]
        identity = ["--home", str(work)]
        replicas[service] = [
            Child(f"{service}-{c}", [*serve, "--cluster", c, *identity], free_port()) for c in "ab"
        ]
    return replicas


def record_routes(store: Store, services: dict[str, list[Child]]) -> None:
    """Each service active-active over its replicas with `protocol: openai`, all ready, as the
    controller would record them (`gateway_harness.record_routes`, for OpenAI services)."""
    workloads = []
    for service in services:
        spec: dict[str, Any] = {
            "metadata": {"name": service},
            "spec": {"pattern": "active-active", "protocol": "openai"},
        }
        workloads.append(WorkloadInput(service, "Service", spec, content_hash(spec), []))
    store.apply(workloads=workloads, documents=[], author="bench", message="")
    records = [
        ReplicaRecord(
            c.name, service, c.name[-1], "active", 1, c.url, c.proc.pid if c.proc else None, "ready"
        )
        for service, children in services.items()
        for c in children
    ]
    store.replace_replicas(records)


async def gateway_serves(session: aiohttp.ClientSession, url: str, services: Sequence[str]) -> None:
    """Wait until the gateway lists every service in /v1/models (its routes are loaded)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{url}/v1/models") as response:
                if response.status == 200:
                    names = {card["id"] for card in (await response.json())["data"]}
                    if names >= set(services):
                        return
        await asyncio.sleep(0.1)
    raise SystemExit(f"the gateway at {url} did not list {', '.join(services)} within 30 s")


def choose_prompt(model: lm.LanguageModel, tokens: int) -> str:
    """The first of PROMPTS, else of the model's words, whose greedy answer runs to `tokens` tokens
    without the model ending it (answers depend on the docstrings the model was trained from)."""
    words = (w for w in model.vocab if len(w) >= 4 and w.isalpha())
    for prompt in (*PROMPTS, *words):
        if sum(1 for _ in model.generate(prompt, tokens)) == tokens:
            return prompt
    raise SystemExit(f"no prompt gives a {tokens}-token answer; try a smaller --tokens")


async def check_prompt(session: aiohttp.ClientSession, replica: str, prompt: str, tokens: int) -> None:
    """A replica answers `prompt` with `tokens` tokens, as the model here did."""
    message = {"role": "user", "content": prompt}
    body = {"model": FAST, "messages": [message], "max_tokens": tokens, "temperature": 0}
    async with session.post(f"{replica}{PATH}", json=body) as response:
        answer = await response.json()
    if answer["usage"]["completion_tokens"] != tokens:
        raise SystemExit(f"a replica answered {prompt!r} with {answer['usage']}, not {tokens} tokens")


# measuring


def rotated(targets: Sequence[Target], by: int) -> list[Target]:
    by %= len(targets)
    return [*targets[by:], *targets[:by]]


async def measured(
    session: aiohttp.ClientSession,
    target: Target,
    urls: list[str],
    body: bytes,
    warm: bytes,
    concurrency: int,
    count: int | None = None,
    seconds: float | None = None,
) -> Batch:
    """A warm-up of `concurrency` short streams at once (connections opened all the way to the
    replicas), then a measured closed loop, with the CPU time the proxy spent on it."""
    await closed_loop(session, urls, warm, concurrency, count=concurrency)
    before = cpu_seconds(target.pids) if target.pids else 0.0
    batch = await closed_loop(session, urls, body, concurrency, count=count, seconds=seconds)
    if target.pids:
        batch.cpu_s = cpu_seconds(target.pids) - before
    return batch


async def idle_cpu(targets: list[Target], seconds: float) -> None:
    """Each proxy's CPU seconds per second with no stream running (health checks, route refreshes...)."""
    proxies = [t for t in targets if t.pids]
    before = [cpu_seconds(t.pids) for t in proxies]
    await asyncio.sleep(seconds)
    for target, then in zip(proxies, before, strict=True):
        target.idle_cpu = (cpu_seconds(target.pids) - then) / seconds


def line(label: str, batch: Batch) -> str:
    cpu = batch.cpu_per_1k
    return (
        f"    {label:<8} {batch.streams_per_s:7.1f} streams/s {batch.tokens_per_s:9,.0f} tok/s   TTFT p50 "
        f"{batch.ttft(0.5):7.2f} p99 {batch.ttft(0.99):8.2f} ms   ITL p50 {batch.itl(0.5):5.2f} p99 "
        f"{batch.itl(0.99):6.2f} ms   errors {batch.errors}"
        + (f"   proxy CPU {cpu:.3f} s/1k tok" if cpu is not None else "")
        + (f"\n             first error: {batch.first_error()[:160]}" if batch.errors else "")
    )


def added_line(batches: dict[str, Batch]) -> str:
    direct = batches[DIRECT]
    parts = [
        f"{label} {b.ttft(0.5) - direct.ttft(0.5):+.2f} / {b.ttft(0.99) - direct.ttft(0.99):+.2f} ms"
        for label, b in batches.items()
        if label != DIRECT
    ]
    return "    added TTFT p50 / p99 against direct: " + ", ".join(parts)


async def measure(
    session: aiohttp.ClientSession,
    targets: list[Target],
    bodies: dict[str, bytes],
    args: argparse.Namespace,
) -> Results:
    mode: Mode = args.mode
    results = Results()
    labels = [t.label for t in targets]
    warm, alone = bodies["warm"], bodies["alone"]

    await idle_cpu(targets, mode.idle_s)
    results.idle_cpu = {t.label: t.idle_cpu for t in targets}

    n = mode.rounds
    print(
        f"\n1. TTFT alone: one stream at a time, {ALONE_TOKENS}-token answers, "
        f"{n} × {mode.alone_streams} per path"
    )
    results.alone = {label: Batch() for label in labels}
    for r in range(n):
        for target in rotated(targets, r):
            urls = target.urls[PACED]
            batch = await measured(session, target, urls, alone, warm, 1, count=mode.alone_streams)
            results.alone[target.label].add(batch)
    for label in labels:
        print(line(label, results.alone[label]))
    print(added_line(results.alone))

    c = args.concurrency
    print(
        f"\n2. latency: {c} streams at a time, {args.tokens}-token answers, "
        f"{n} × {mode.latency_streams} per path"
    )
    results.latency = {label: Batch() for label in labels}
    for r in range(n):
        for target in rotated(targets, r):
            urls = target.urls[PACED]
            batch = await measured(session, target, urls, bodies[PACED], warm, c, count=mode.latency_streams)
            results.latency[target.label].add(batch)
    for label in labels:
        print(line(label, results.latency[label]))
    print(added_line(results.latency))

    bound = args.ttft_bound_ms
    print(
        f"\n3. ramp: max({mode.level_streams}, {mode.per_client} × level) streams per level and path; "
        f"sustained: 0 errors and TTFT p99 ≤ {bound:g} ms"
    )
    live = list(targets)
    for i, level in enumerate(mode.levels):
        print(f"  {level} streams at a time")
        results.ramp[level] = {}
        count = max(mode.level_streams, mode.per_client * level)
        for target in rotated(live, i):
            urls = target.urls[PACED]
            batch = await measured(session, target, urls, bodies[PACED], warm, level, count=count)
            results.ramp[level][target.label] = batch
        for target in list(live):
            batch = results.ramp[level][target.label]
            print(line(target.label, batch))
            if batch.errors == 0 and batch.ttft(0.99) <= bound:
                results.sustained[target.label] = level
            elif batch.errors or batch.ttft(0.99) > GIVE_UP * bound:
                live.remove(target)
        if not live:
            break

    c, n = THROUGHPUT_CONCURRENCY, mode.throughput_rounds
    print(f"\n4. throughput: pace 0, {c} streams at a time, {n} × {mode.throughput_s:g} s per path")
    results.throughput = {label: Batch() for label in labels}
    for r in range(n):
        for target in rotated(targets, r):
            urls = target.urls[FAST]
            batch = await measured(session, target, urls, bodies[FAST], warm, c, seconds=mode.throughput_s)
            results.throughput[target.label].add(batch)
    for label in labels:
        print(line(label, results.throughput[label]))

    if mode.long_streams:
        await long_streams(session, targets, bodies[SLOW], results)
    return results


ATTEMPTS = re.compile(r"^polycloud_gateway_(?:attempts_total|ejections_total)\{([^}]*)\} (\S+)$", re.M)


async def gateway_counts(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The gateway's attempts by outcome and its ejections, for the slow service."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    counts: dict[str, float] = {}
    for labels, value in ATTEMPTS.findall(text):
        if f'service="{SLOW}"' in labels:
            outcome = re.search(r'outcome="([^"]+)"', labels)
            key = f"attempts {outcome.group(1)}" if outcome else "ejections"
            counts[key] = counts.get(key, 0.0) + float(value)
    return counts


async def long_streams(
    session: aiohttp.ClientSession, targets: list[Target], body: bytes, results: Results
) -> None:
    """Phase 5: LONG_STREAMS streams started at once, each ~12 s long, once per path."""
    what = f"{LONG_STREAMS} at once, {SLOW_PACE_MS:g} ms per token (~12 s each), once per path"
    print(f"\n5. long streams: {what}")
    for target in targets:
        urls = target.urls[SLOW]
        gateway = urls[0].removesuffix(PATH) if target.label == GATEWAY else None
        before = await gateway_counts(session, gateway) if gateway else {}
        batch = await closed_loop(session, urls, body, LONG_STREAMS, count=LONG_STREAMS)
        results.long[target.label] = batch
        ttfts = sorted(s.ttft_ms for s in batch.ok if s.ttft_ms is not None)
        slowest = f"{ttfts[-1]:,.0f}" if ttfts else "—"
        print(
            f"    {target.label:<8} {len(batch.ok)} answered, {batch.errors} failed; "
            f"TTFT p50 {batch.ttft(0.5):,.0f} p90 {batch.ttft(0.9):,.0f} max {slowest} ms"
            + (f"; first error: {batch.first_error()[:120]}" if batch.errors else "")
        )
        if gateway:
            after = await gateway_counts(session, gateway)
            delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}
            results.long_counts = delta
            counted = ", ".join(f"{k} {v:.0f}" for k, v in sorted(delta.items()))
            print(f"             the gateway's own count: {counted}")


# the run


async def run(args: argparse.Namespace, work: Path) -> None:
    started = time.monotonic()
    litellm: Path | str = "--no-litellm given" if args.no_litellm else llm_litellm.ensure_installed()
    fleet = Fleet(work)
    paces = {PACED: args.pace_ms, FAST: 0.0} | ({SLOW: SLOW_PACE_MS} if args.mode.long_streams else {})
    replicas = replica_children(work, {service: work / f"{service}.json" for service in paces})
    proxy: llm_litellm.LiteLLM | None = None
    if isinstance(litellm, Path):  # first: it takes longest to start
        deployments = {s: [c.url for c in children] for s, children in replicas.items()}
        config = llm_litellm.write_config(work / "litellm.yaml", deployments)
        proxy = llm_litellm.start(litellm, config, free_port(), work)
    litellm_note: str | None = None if proxy is not None else str(litellm)
    gateway = Child("gateway", ["polycloud.gateway", "--addr", "127.0.0.1:0"], 0)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=3)
    timeout = aiohttp.ClientTimeout(total=60, sock_read=20)
    try:
        model = train_models(work, paces)
        prompt = choose_prompt(model, args.tokens)
        for child in (c for children in replicas.values() for c in children):
            fleet.start(child)
        database = f"sqlite:///{work / 'state.db'}"
        with Store.open(database) as store:
            record_routes(store, replicas)
        gateway.args += ["--database-url", database]
        fleet.start(gateway)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for child in [*(c for children in replicas.values() for c in children), gateway]:
                await wait_ready(session, child.url)
            await gateway_serves(session, gateway.url, list(paces))
            if proxy is not None and (why := await llm_litellm.wait_ready(session, proxy)) is not None:
                litellm_note = why
                proxy.stop()
                proxy = None
            if litellm_note is not None:
                print(f"LiteLLM NOT MEASURED: {litellm_note}\n  → reporting direct against the gateway only")
            await check_prompt(session, replicas[FAST][0].url, prompt, args.tokens)
            bodies = {s: chat_body(s, prompt, args.tokens) for s in paces}
            bodies |= {"alone": chat_body(PACED, prompt, ALONE_TOKENS), "warm": chat_body(PACED, prompt, 2)}
            gateway_pids = [gateway.proc.pid] if gateway.proc else []
            targets = [
                Target(DIRECT, {s: [f"{c.url}{PATH}" for c in cs] for s, cs in replicas.items()}),
                Target(GATEWAY, {s: [f"{gateway.url}{PATH}"] for s in replicas}, gateway_pids),
            ]
            if proxy is not None:
                targets.append(
                    Target(LITELLM, {s: [f"{proxy.url}{PATH}"] for s in replicas}, [proxy.proc.pid])
                )
            for target in targets:  # first calls: imports, pools, routing state
                for service in (PACED, FAST):
                    await closed_loop(
                        session, target.urls[service], bodies[service], 8, count=args.mode.first_calls
                    )
            print(
                f"LLM streaming benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
                f"{args.tokens}-token answers, {args.pace_ms:g} ms per token (paced) and 0; "
                f"prompt {prompt!r}; LiteLLM {llm_litellm.VERSION if proxy else 'not run'}; "
                f"set up in {time.monotonic() - started:.0f} s"
            )
            results = await measure(session, targets, bodies, args)
            labels = [t.label for t in targets]
            report(results, labels, args, litellm_note)
            print(f"\nload average {os.getloadavg()[0]:.2f}; {time.monotonic() - started:.0f} s in all")
            if args.json is not None:
                args.json.write_text(json.dumps(summary(results, labels, args), indent=2) + "\n")
    finally:
        if proxy is not None:
            proxy.stop()
        if gateway.proc is not None:
            stop_gateway(gateway)
        fleet.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="fewer, shorter batches (under a minute)")
    add("--no-litellm", action="store_true", help="direct against the gateway only")
    add("--pace-ms", type=float, default=10.0, help="the paced model's pause before each token")
    add("--tokens", type=int, default=48, help="tokens per answer")
    add("--concurrency", type=int, default=8, help="streams at a time in the latency rounds")
    add("--ttft-bound-ms", type=float, default=250.0, help="TTFT p99 at which a ramp level is sustained")
    add("--json", type=Path, help="also write the figures to this file")
    add("--work", type=Path, help="keep models, state and logs here (default: a temporary folder)")
    args = parser.parse_args()
    args.mode = QUICK if args.quick else FULL
    if uvloop is not None:
        uvloop.install()
    with work_folder(args.work, "llm-bench-") as work:
        asyncio.run(run(args, work))


if __name__ == "__main__":
    main()

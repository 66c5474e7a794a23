"""Load reporting: what this gateway sees of each (service, cluster), written for the autoscaler.

Every `interval_s` (1 s) the `LoadReporter` sends one `LoadReport` per (service, cluster) to a
`LoadSink`: requests in flight now and their mean over the window (sampled every `sample_interval_s`),
answers per second, the share of 5xx answers and the p99 answer time over the window. The sink is
called in a worker thread, so the database is never touched on the request path; a failing sink is
logged (once per distinct message) and the next window is reported as usual, so reports resume by
themselves when the store returns. A sink that is a `MemberSink` also gets a heartbeat after each
window's reports: the gateway's membership in the fleet.

Each report also carries the LLM tokens (prompt and completion) the (service, cluster) served in the
window (`LoadWindow.served`, from `RecordingMetrics.streamed`): counts, which the store adds up per hour
for cost per 1M tokens; and the mean time between streamed tokens (inter-token latency) of the window.
A window whose report could not be written keeps its tokens for the next one.

The request path only appends an answer time to a list (`LoadWindow.answered`, called through
`RecordingMetrics`); in-flight counts are read from the upstream registry by the sampler. Flag
evaluations per variant (`polycloud.gateway.flagcount`) go to the sink with each window when it is a
`FlagSink`, and like tokens a window that could not be written keeps them for the next. Like the
registry, everything here is touched from the event loop only. `StoreLoadSink`
(`polycloud.gateway.sourcing`) writes samples to the state store.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from polycloud.errors import PolycloudError
from polycloud.exchange import LOAD_REPORT_INTERVAL_S, FlagCount, KeyLoad, LoadReport, RevisionCounts
from polycloud.gateway.canary import RevisionCounter, RevisionSink
from polycloud.gateway.flagcount import FlagSink, FlagWindow
from polycloud.gateway.keyload import KeySink, KeyWindow
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.tokens import TokenUsage
from polycloud.gateway.upstreams import UpstreamRegistry

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(service, cluster)."""
MAX_TIMES_PER_KEY = 8192
"""Answer times kept per (service, cluster) and window for the p99; later answers are only counted."""


class LoadSink(Protocol):
    """Where load samples go. Called from a worker thread, once per window."""

    def report(self, gateway_id: str, samples: list[LoadReport]) -> None:
        """Make `samples` this gateway's whole current report (replacing its previous one).

        Raises:
            PolycloudError: The report could not be written (it is logged and dropped).
        """


@runtime_checkable
class MemberSink(Protocol):
    """A sink that also records this gateway as a live member of the fleet (`polycloud status`)."""

    def heartbeat(self, routed: Mapping[str, Sequence[int]]) -> None:
        """Say that this gateway is alive now, and what it routes (`UpstreamRegistry.routed`); called
        after each window's reports.

        Raises:
            PolycloudError: The heartbeat could not be written (it is logged once and retried with the
                next window).
        """


@dataclass
class _Answers:
    count: int = 0
    errors: int = 0
    times_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q`-quantile (0 < q <= 1) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class LoadWindow:
    """Answers and in-flight samples per (service, cluster) since the window began."""

    def __init__(self) -> None:
        """Start an empty window."""
        self._answers: dict[Key, _Answers] = {}
        self._in_flight_sums: dict[Key, float] = {}
        self._samples = 0
        self._current: dict[Key, int] = {}
        self._tokens: dict[Key, list[float]] = {}
        """Per (service, cluster): prompt tokens, completion tokens, gaps between streamed tokens and
        their sum in ms."""

    def served(
        self, service: str, cluster: str, prompt: int, completion: int, inter_token_s: float | None = None
    ) -> None:
        """Count the tokens of one LLM answer (prompt and completion) and, for a stream, the mean time
        between its tokens (weighted by its gaps: a long answer weighs more than a short one)."""
        if not service or not cluster or not (prompt or completion):
            return
        tokens = self._tokens.get((service, cluster))
        if tokens is None:
            tokens = self._tokens[(service, cluster)] = [0, 0, 0, 0.0]
        tokens[0] += prompt
        tokens[1] += completion
        if inter_token_s is not None and completion > 1:
            tokens[2] += completion - 1
            tokens[3] += inter_token_s * 1000.0 * (completion - 1)

    def unreported(self, samples: list[LoadReport]) -> None:
        """Give the tokens of `samples`, which could not be written, to the next window."""
        for sample in samples:
            self.served(sample.service, sample.cluster, sample.prompt_tokens, sample.completion_tokens)

    def answered(self, service: str, cluster: str, code: int, seconds: float) -> None:
        """Count one answer to a client (request path: a dict lookup and an append)."""
        if not service or not cluster:
            return  # answered by the gateway itself (404, 429, 503...): no cluster carried it
        answers = self._answers.get((service, cluster))
        if answers is None:
            answers = self._answers[(service, cluster)] = _Answers()
        answers.count += 1
        if code >= 500:
            answers.errors += 1
        if len(answers.times_ms) < MAX_TIMES_PER_KEY:
            answers.times_ms.append(seconds * 1000.0)

    def sample(self, in_flight: dict[Key, int]) -> None:
        """Add one in-flight sample (every tracked (service, cluster), idle ones at 0)."""
        self._samples += 1
        self._current = in_flight
        sums = self._in_flight_sums
        for key, count in in_flight.items():
            sums[key] = sums.get(key, 0.0) + count

    def close(self, elapsed_s: float) -> list[LoadReport]:
        """The window's samples, sorted by (service, cluster); a new window begins."""
        keys = sorted(set(self._answers) | set(self._in_flight_sums) | set(self._current) | set(self._tokens))
        samples = []
        for key in keys:
            answers = self._answers.get(key) or _Answers()
            mean = self._in_flight_sums.get(key, 0.0) / self._samples if self._samples else 0.0
            prompt, completion, gaps, gaps_ms = self._tokens.get(key) or (0, 0, 0, 0.0)
            samples.append(
                LoadReport(
                    service=key[0],
                    cluster=key[1],
                    in_flight=float(self._current.get(key, 0)),
                    in_flight_mean=mean,
                    rps=answers.count / elapsed_s if elapsed_s > 0 else 0.0,
                    error_rate=answers.errors / answers.count if answers.count else 0.0,
                    p99_ms=percentile(answers.times_ms, 0.99),
                    p50_ms=percentile(answers.times_ms, 0.5),
                    prompt_tokens=int(prompt),
                    completion_tokens=int(completion),
                    inter_token_ms=gaps_ms / gaps if gaps else 0.0,
                )
            )
        self._answers = {}
        self._tokens = {}
        self._in_flight_sums = {}
        self._samples = 0
        return samples


class RecordingMetrics(GatewayMetrics):
    """The gateway's metrics, also feeding every answer into a `LoadWindow`."""

    def __init__(self, window: LoadWindow, flags: FlagWindow | None = None) -> None:
        """Create the metrics; answers also go to `window`, flag evaluations to `flags`."""
        super().__init__()
        self.window = window
        self.flags = flags

    def answered(self, service: str, cluster: str, code: int, seconds: float) -> None:
        """Count one answer in the metrics and in the load window."""
        super().answered(service, cluster, code, seconds)
        self.window.answered(service, cluster, code, seconds)

    def streamed(self, service: str, cluster: str, revision: int, usage: TokenUsage) -> None:
        """Count one LLM answer's tokens in the metrics and in the load window."""
        super().streamed(service, cluster, revision, usage)
        self.window.served(service, cluster, usage.prompt, usage.completion, usage.inter_token_s)

    def flag_evaluated(self, flag: str, variant: str, reason: str) -> None:
        """Count one flag evaluation in the metrics and in the flag window."""
        super().flag_evaluated(flag, variant, reason)
        if self.flags is not None:
            self.flags.evaluated(flag, variant, reason)

    def flags_evaluated(self, answers: Sequence[tuple[str, str, str]]) -> None:
        """Count a bulk answer's evaluations in the metrics and in the flag window."""
        super().flags_evaluated(answers)
        if self.flags is not None:
            self.flags.evaluated_all(answers)


def default_gateway_id() -> str:
    """`host:pid`, unique among live gateways on a machine; `running` prefers `host:port/pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def in_flight_by_cluster(registry: UpstreamRegistry) -> dict[Key, int]:
    """Requests outstanding per (service, cluster), every tracked replica's cluster included."""
    counts: dict[Key, int] = {}
    for upstream in registry.upstreams():
        key = (upstream.service, upstream.cluster)
        counts[key] = counts.get(key, 0) + upstream.outstanding
    return counts


class LoadReporter:
    """Samples in-flight load and reports each window to a sink from a worker thread."""

    def __init__(
        self,
        sink: LoadSink,
        registry: UpstreamRegistry,
        window: LoadWindow,
        gateway_id: str,
        *,
        interval_s: float = LOAD_REPORT_INTERVAL_S,
        sample_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        revisions: RevisionCounter | None = None,
        keys: KeyWindow | None = None,
        flags: FlagWindow | None = None,
    ) -> None:
        """Create the reporter; `run` it as a task.

        Args:
            sink: Where each window's samples go.
            registry: For requests in flight per replica.
            window: Fed with answers by `RecordingMetrics`.
            gateway_id: Stable for the life of the process and unique among gateways.
            interval_s: Seconds per report window.
            sample_interval_s: Seconds between in-flight samples.
            clock: Monotonic seconds (a fake one in tests).
            revisions: Per-revision attempt counts, also reported when `sink` is a `RevisionSink`.
            keys: Answers per inference key, also reported when `sink` is a `KeySink`.
            flags: Flag evaluations per variant, also reported when `sink` is a `FlagSink`.
        """
        self.gateway_id = gateway_id
        self._sink = sink
        self._registry = registry
        self._window = window
        self._interval = interval_s
        self._sample_interval = min(sample_interval_s, interval_s)
        self._clock = clock
        self._started = clock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-load")
        self._last_error: str | None = None
        self._revisions = revisions if isinstance(sink, RevisionSink) else None
        self._keys = keys if isinstance(sink, KeySink) else None
        self._flags = flags if isinstance(sink, FlagSink) else None

    def sample(self) -> None:
        """Take one in-flight sample now."""
        self._window.sample(in_flight_by_cluster(self._registry))

    def collect(self) -> list[LoadReport]:
        """Close the window: its samples (with a final in-flight sample), and a new window begins."""
        now = self._clock()
        self.sample()
        samples = self._window.close(now - self._started)
        self._started = now
        return samples

    async def report(self) -> bool:
        """Close the window and hand its samples to the sink in the worker thread; False on failure."""
        elapsed = self._clock() - self._started
        samples = self.collect()
        revisions = self._revisions.rows() if self._revisions is not None else None
        keys = self._keys.close(elapsed) if self._keys is not None else None
        flags = self._flags.close() if self._flags is not None else []
        routed = self._registry.routed()
        loop = asyncio.get_running_loop()
        written: list[str] = []
        try:
            await loop.run_in_executor(
                self._executor, self._write, samples, revisions, keys, flags, routed, written
            )
        except PolycloudError as e:
            if "load" not in written:
                self._window.unreported(samples)  # tokens are counts: the next window carries them
            if "flags" not in written and self._flags is not None:
                self._flags.unreported(flags)  # so are flag evaluations
            message = str(e)
            if message != self._last_error:
                log.warning("cannot report load (dropping this window): %s", message)
                self._last_error = message
            return False
        if self._last_error is not None:
            log.info("load reports written again")
            self._last_error = None
        return True

    def _write(
        self,
        samples: list[LoadReport],
        revisions: list[RevisionCounts] | None,
        keys: list[KeyLoad] | None,
        flags: list[FlagCount],
        routed: dict[str, list[int]],
        written: list[str],
    ) -> None:
        self._sink.report(self.gateway_id, samples)
        written.append("load")  # the load reports (and their tokens) are in: never count them again
        if flags and isinstance(self._sink, FlagSink):
            self._sink.report_flags(self.gateway_id, flags)
        written.append("flags")
        if revisions is not None and isinstance(self._sink, RevisionSink):
            self._sink.report_revisions(self.gateway_id, revisions)
        if keys is not None and isinstance(self._sink, KeySink):
            self._sink.report_keys(self.gateway_id, keys)
        if isinstance(self._sink, MemberSink):
            self._sink.heartbeat(routed)  # last: an older schema without members still gets the reports

    async def run(self) -> None:
        """Sample and report forever (cancel the task to stop)."""
        self._started = self._clock()
        due = self._started + self._interval
        while True:
            await asyncio.sleep(self._sample_interval)
            if self._clock() >= due:
                await self.report()
                due = self._clock() + self._interval
            else:
                self.sample()

    def close(self) -> None:
        """Let go of the worker thread (a write still running finishes on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

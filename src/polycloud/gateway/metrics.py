"""The gateway's Prometheus metrics, on a registry of its own (several gateways may share a process).

    polycloud_gateway_requests_total{service, cluster, code}   answers to clients (cluster "" when the
                                                                gateway answered itself: 429, 503, ...)
    polycloud_gateway_request_duration_seconds{service}        time from request to answer
    polycloud_gateway_attempts_total{service, cluster, outcome} upstream attempts: ok, 5xx, connect,
                                                                timeout, broken, overtaken (lost a
                                                                hedge race without failing)
    polycloud_gateway_retries_total{service}                   attempts after the first
    polycloud_gateway_hedges_total{service}                    attempts raced by a hedged copy
    polycloud_gateway_ejections_total{service, cluster}        passive outlier ejections
    polycloud_gateway_upstream_bytes_total{service, cluster, direction}  bytes of successful attempts'
                                                                bodies, sent to and received from a cluster
    polycloud_gateway_in_flight                                requests being proxied
    polycloud_gateway_routes_version                           route tables applied
    polycloud_gateway_llm_time_to_first_token_seconds{service, cluster, revision}  LLM streams
    polycloud_gateway_llm_inter_token_seconds{service, cluster, revision}  mean gap between tokens
    polycloud_gateway_llm_tokens_total{service, cluster, revision, kind}  prompt and completion tokens
    polycloud_gateway_flag_evaluations_total{flag, variant, reason}  OFREP evaluations (reason: the
                                                                OpenFeature reason or error code; flag ""
                                                                for keys that name no flag)

Names follow `polycloud_<component>_<what>_<unit>`; the control plane's `/metrics` adds the cluster's
provider and region (`polycloud.obs.federation`).

The request path counts in plain dicts of plain numbers (a lookup and an addition per count), and a
collector turns them into Prometheus families when `/metrics` is read: the exposition is what
`prometheus_client`'s `Counter` and `Histogram` would write (`_created` included), without their
per-increment lock and checks, which were a sixth of the gateway's own Python time per request. Every
count happens on the event loop; a scrape reads the dicts from the same loop. The LLM families use
`prometheus_client`'s own classes: they are counted once per LLM answer, not once per request of the
hot path, and an answer costs milliseconds to seconds of a replica's time.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from polycloud.gateway.tokens import TokenUsage

TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds, for time to first token and between tokens."""
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_go_float = cast(Callable[[float], str], floatToGoString)  # untyped in prometheus_client
_LE = (*(_go_float(b) for b in BUCKETS), "+Inf")
"""The `le` label of each bucket, as `prometheus_client.Histogram` writes it."""


class _Count:
    """One labelled counter: its value and when it was first counted (Prometheus' `_created`)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


class _Histogram:
    """One labelled histogram: a count per bucket (not cumulative; the last is +Inf) and the sum."""

    __slots__ = ("buckets", "created", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()


Counts = dict[tuple[str, ...], _Count]


class GatewayMetrics:
    """Counters, histograms and gauges of one gateway."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        """Create the metrics on a fresh registry."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests: dict[tuple[str, str, int], _Count] = {}
        self._duration: dict[str, _Histogram] = {}
        self._attempts: Counts = {}
        self._retries: Counts = {}
        self._hedges: Counts = {}
        self._ejections: Counts = {}
        self._flags: Counts = {}
        self._bytes: dict[tuple[str, str], tuple[_Count, _Count]] = {}
        self.registry.register(_Families(self))
        r = self.registry
        self.in_flight = Gauge("polycloud_gateway_in_flight", "Requests being proxied.", registry=r)
        self.routes_version = Gauge("polycloud_gateway_routes_version", "Route tables applied.", registry=r)
        labels = ["service", "cluster", "revision"]
        self.first_token = Histogram(
            "polycloud_gateway_llm_time_to_first_token_seconds",
            "Time from an LLM request's arrival to its first streamed token.",
            labels,
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.inter_token = Histogram(
            "polycloud_gateway_llm_inter_token_seconds",
            "Mean time between the streamed tokens of one answer.",
            labels,
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "polycloud_gateway_llm_tokens",
            "Tokens of LLM requests (kind: prompt or completion), as the replica's usage reports them.",
            [*labels, "kind"],
            registry=r,
        )

    def streamed(self, service: str, cluster: str, revision: int, usage: TokenUsage) -> None:
        """Count one LLM answer's tokens, time to first token and inter-token time."""
        labels = (service, cluster, str(revision))
        if usage.prompt:
            self.tokens.labels(*labels, "prompt").inc(usage.prompt)
        if usage.completion:
            self.tokens.labels(*labels, "completion").inc(usage.completion)
        if usage.first_token_s is not None:
            self.first_token.labels(*labels).observe(usage.first_token_s)
        if usage.inter_token_s is not None:
            self.inter_token.labels(*labels).observe(usage.inter_token_s)

    def answered(self, service: str, cluster: str, code: int, seconds: float) -> None:
        """Count one answer to a client and its duration."""
        key = (service, cluster, code)
        count = self._requests.get(key)
        if count is None:
            count = self._requests[key] = _Count()
        count.value += 1
        histogram = self._duration.get(service)
        if histogram is None:
            histogram = self._duration[service] = _Histogram()
        histogram.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1  # `le`: a bound includes itself
        histogram.sum += seconds

    def attempted(self, service: str, cluster: str, outcome: str) -> None:
        """Count one upstream attempt by outcome ("ok", "5xx", "connect", "timeout", "broken")."""
        _add(self._attempts, (service, cluster, outcome), 1)

    def moved(self, service: str, cluster: str, sent: int, received: int) -> None:
        """Count the body bytes of one successful attempt."""
        key = (service, cluster)
        pair = self._bytes.get(key)
        if pair is None:
            pair = self._bytes[key] = (_Count(), _Count())
        pair[0].value += sent
        pair[1].value += received

    def retried(self, service: str) -> None:
        """Count one retry."""
        _add(self._retries, (service,), 1)

    def hedged(self, service: str) -> None:
        """Count one hedged copy sent."""
        _add(self._hedges, (service,), 1)

    def ejected(self, service: str, cluster: str) -> None:
        """Count one ejection."""
        _add(self._ejections, (service, cluster), 1)

    def flag_evaluated(self, flag: str, variant: str, reason: str) -> None:
        """Count one flag evaluation by variant and reason (or error code)."""
        _add(self._flags, (flag, variant, reason), 1)

    def flags_evaluated(self, answers: Sequence[tuple[str, str, str]]) -> None:
        """Count a bulk answer's evaluations, (flag, variant, reason) each: one call for them all, as a
        provider's poll may hold every flag."""
        counts = self._flags
        for key in answers:
            _add(counts, key, 1)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def _add(counts: Counts, key: tuple[str, ...], amount: float) -> None:
    count = counts.get(key)
    if count is None:
        count = counts[key] = _Count()
    count.value += amount


class _Families(Collector):
    """The counters and the histogram of a `GatewayMetrics`, as Prometheus metric families."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        yield _counter(
            "polycloud_gateway_requests",
            "Answers to clients.",
            ["service", "cluster", "code"],
            {(s, c, str(code)): n for (s, c, code), n in list(m._requests.items())},
        )
        duration = HistogramMetricFamily(
            "polycloud_gateway_request_duration_seconds", "Time from request to answer.", labels=["service"]
        )
        for service, h in list(m._duration.items()):
            cumulative, total = [], 0
            for le, n in zip(_LE, h.buckets, strict=True):
                total += n
                cumulative.append((le, float(total)))
            duration.add_metric([service], cumulative, h.sum)
            duration.samples.append(Sample(duration.name + "_created", {"service": service}, h.created))
        yield duration
        yield _counter(
            "polycloud_gateway_attempts",
            "Upstream attempts by outcome.",
            ["service", "cluster", "outcome"],
            m._attempts,
        )
        yield _counter("polycloud_gateway_retries", "Attempts after the first.", ["service"], m._retries)
        yield _counter("polycloud_gateway_hedges", "Attempts raced by a hedged copy.", ["service"], m._hedges)
        yield _counter(
            "polycloud_gateway_ejections", "Passive outlier ejections.", ["service", "cluster"], m._ejections
        )
        yield _counter(
            "polycloud_gateway_flag_evaluations",
            "Feature flag evaluations (OFREP) by variant and reason or error code.",
            ["flag", "variant", "reason"],
            m._flags,
        )
        moved: Counts = {}
        for (service, cluster), (sent, received) in list(m._bytes.items()):
            moved[(service, cluster, "sent")] = sent
            moved[(service, cluster, "received")] = received
        yield _counter(
            "polycloud_gateway_upstream_bytes",
            "Bytes of request and answer bodies moved to and from a cluster by successful attempts.",
            ["service", "cluster", "direction"],
            moved,
        )


def _counter(name: str, documentation: str, labels: list[str], counts: Counts) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in list(counts.items()):
        family.add_metric(list(values), count.value, created=count.created)
    return family

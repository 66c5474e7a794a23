"""The gateway's Prometheus metrics, on a registry of its own (several gateways may share a process).

    polycloud_gateway_requests_total{service, cluster, code}   answers to clients (cluster "" when the
                                                                gateway answered itself: 429, 503, ...)
    polycloud_gateway_request_duration_seconds{service}        time from request to answer
    polycloud_gateway_attempts_total{service, cluster, outcome} upstream attempts: ok, 5xx, connect,
                                                                timeout, broken
    polycloud_gateway_retries_total{service}                   attempts after the first
    polycloud_gateway_ejections_total{service, cluster}        passive outlier ejections
    polycloud_gateway_upstream_bytes_total{service, cluster, direction}  bytes of successful attempts'
                                                                bodies, sent to and received from a cluster
    polycloud_gateway_in_flight                                requests being proxied
    polycloud_gateway_routes_version                           route tables applied

Names follow `polycloud_<component>_<what>_<unit>`; the control plane's `/metrics` adds the cluster's
provider and region (`polycloud.obs.federation`). Labelled children are cached in dicts so the request
path does one dict lookup per metric.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """Counters, histograms and gauges of one gateway."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        """Create the metrics on a fresh registry."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "polycloud_gateway_requests", "Answers to clients.", ["service", "cluster", "code"], registry=r
        )
        self._duration = Histogram(
            "polycloud_gateway_request_duration_seconds",
            "Time from request to answer.",
            ["service"],
            buckets=BUCKETS,
            registry=r,
        )
        self._attempts = Counter(
            "polycloud_gateway_attempts",
            "Upstream attempts by outcome.",
            ["service", "cluster", "outcome"],
            registry=r,
        )
        self._retries = Counter(
            "polycloud_gateway_retries", "Attempts after the first.", ["service"], registry=r
        )
        self._hedges = Counter(
            "polycloud_gateway_hedges", "Attempts raced by a hedged copy.", ["service"], registry=r
        )
        self._ejections = Counter(
            "polycloud_gateway_ejections", "Passive outlier ejections.", ["service", "cluster"], registry=r
        )
        self._bytes = Counter(
            "polycloud_gateway_upstream_bytes",
            "Bytes of request and answer bodies moved to and from a cluster by successful attempts.",
            ["service", "cluster", "direction"],
            registry=r,
        )
        self.in_flight = Gauge("polycloud_gateway_in_flight", "Requests being proxied.", registry=r)
        self.routes_version = Gauge("polycloud_gateway_routes_version", "Route tables applied.", registry=r)
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}
        self._attempt_children: dict[tuple[str, str, str], Counter] = {}
        self._bytes_children: dict[tuple[str, str], tuple[Counter, Counter]] = {}

    def answered(self, service: str, cluster: str, code: int, seconds: float) -> None:
        """Count one answer to a client and its duration."""
        key = (service, cluster, code)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._requests.labels(service, cluster, str(code))
            self._request_children[key] = counter
        counter.inc()
        histogram = self._duration_children.get(service)
        if histogram is None:
            histogram = self._duration.labels(service)
            self._duration_children[service] = histogram
        histogram.observe(seconds)

    def attempted(self, service: str, cluster: str, outcome: str) -> None:
        """Count one upstream attempt by outcome ("ok", "5xx", "connect", "timeout", "broken")."""
        key = (service, cluster, outcome)
        counter = self._attempt_children.get(key)
        if counter is None:
            counter = self._attempts.labels(service, cluster, outcome)
            self._attempt_children[key] = counter
        counter.inc()

    def moved(self, service: str, cluster: str, sent: int, received: int) -> None:
        """Count the body bytes of one successful attempt."""
        key = (service, cluster)
        pair = self._bytes_children.get(key)
        if pair is None:
            pair = (
                self._bytes.labels(service, cluster, "sent"),
                self._bytes.labels(service, cluster, "received"),
            )
            self._bytes_children[key] = pair
        pair[0].inc(sent)
        pair[1].inc(received)

    def retried(self, service: str) -> None:
        """Count one retry."""
        self._retries.labels(service).inc()

    def hedged(self, service: str) -> None:
        """Count one hedged copy sent."""
        self._hedges.labels(service).inc()

    def ejected(self, service: str, cluster: str) -> None:
        """Count one ejection."""
        self._ejections.labels(service, cluster).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

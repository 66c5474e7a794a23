"""Prometheus metrics of one replica, in a registry of its own (nothing global, nothing at import).

Only inference requests (`POST .../infer`) are counted and timed, whatever their outcome, so that
health probes do not dilute request rates and latencies:

- `polycloud_replica_requests_total{service,cluster,revision,code}` counter;
- `polycloud_replica_request_duration_seconds{service,cluster,revision}` histogram, measured from the
  request's arrival to the end of the answer, simulated delay included;
- `polycloud_replica_inflight_requests{service,cluster,revision}` gauge.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bucket bounds in seconds: a millisecond model up to a ten-second drill delay."""


@dataclass(frozen=True)
class ReplicaLabels:
    """The identity every metric of the replica carries."""

    service: str
    cluster: str
    revision: str


class ReplicaMetrics:
    """The replica's counters, histogram and gauge, and their text exposition."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, labels: ReplicaLabels) -> None:
        """Create the metrics in a fresh registry.

        Args:
            labels: The values of the service, cluster and revision labels.
        """
        self.registry = CollectorRegistry()
        self.labels = labels
        """The service, cluster and revision every metric carries."""
        names = ("service", "cluster", "revision")
        self._requests = Counter(
            "polycloud_replica_requests",
            "Inference requests answered by this replica, by HTTP status code.",
            [*names, "code"],
            registry=self.registry,
        )
        duration = Histogram(
            "polycloud_replica_request_duration_seconds",
            "Time from an inference request's arrival to the end of its answer.",
            names,
            buckets=BUCKETS,
            registry=self.registry,
        )
        inflight = Gauge(
            "polycloud_replica_inflight_requests",
            "Inference requests being answered now.",
            names,
            registry=self.registry,
        )
        values = (labels.service, labels.cluster, labels.revision)
        self._duration = duration.labels(*values)
        self._inflight = inflight.labels(*values)

    def started(self) -> None:
        """Note that an inference request arrived."""
        self._inflight.inc()

    def finished(self, code: int, seconds: float) -> None:
        """Note that an inference request was answered.

        Args:
            code: The HTTP status code sent.
            seconds: How long it took.
        """
        self._inflight.dec()
        self._duration.observe(seconds)
        labels = self.labels
        self._requests.labels(labels.service, labels.cluster, labels.revision, str(code)).inc()

    def render(self) -> bytes:
        """The metrics in the Prometheus text format (`content_type`)."""
        return generate_latest(self.registry)

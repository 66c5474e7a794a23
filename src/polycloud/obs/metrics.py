"""Prometheus metrics of the observer (served by the control plane's `/metrics`).

    polycloud_slo_budget_left_ratio{service, cluster}           error budget left over the SLO window
    polycloud_slo_burn_rate_ratio{service, cluster, window}     burn rate (5m, 30m, 1h, 6h)
    polycloud_probe_runs_total{service, cluster, outcome}       synthetic probes: ok, failed
    polycloud_probe_duration_seconds{service, cluster}          time of a probe's inference
    polycloud_anomalies_total{service, cluster, signal}         anomalies detected
    polycloud_drift_psi_ratio{service, cluster, revision}       last population stability index
    polycloud_incidents_open                                     incidents open now

`cluster` is "" for a service's overall figures.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ObserverMetrics:
    """The observer's gauges and counters."""

    def __init__(self) -> None:
        """Create the metrics on a fresh registry."""
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.budget = Gauge(
            "polycloud_slo_budget_left_ratio", "Error budget left.", ["service", "cluster"], registry=r
        )
        self.burn = Gauge(
            "polycloud_slo_burn_rate_ratio",
            "Error budget burn rate.",
            ["service", "cluster", "window"],
            registry=r,
        )
        self.probes = Counter(
            "polycloud_probe_runs", "Synthetic probes.", ["service", "cluster", "outcome"], registry=r
        )
        self.probe_time = Histogram(
            "polycloud_probe_duration_seconds",
            "Time of a probe's inference.",
            ["service", "cluster"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.anomalies = Counter(
            "polycloud_anomalies", "Anomalies detected.", ["service", "cluster", "signal"], registry=r
        )
        self.drift = Gauge(
            "polycloud_drift_psi_ratio",
            "Population stability index of predictions against the reference window.",
            ["service", "cluster", "revision"],
            registry=r,
        )
        self.incidents_open = Gauge("polycloud_incidents_open", "Incidents open now.", registry=r)

    def slo(self, report: dict[str, Any]) -> None:
        """Set the SLO gauges from an SLO report (`polycloud.obs.report`)."""
        self.budget.clear()
        self.burn.clear()
        for service in report["services"]:
            for entry in [{"cluster": "", **service["overall"]}, *service["clusters"]]:
                self.budget.labels(service["service"], entry["cluster"]).set(entry["budgetLeft"])
                for window, rate in entry["burnRates"].items():
                    self.burn.labels(service["service"], entry["cluster"], window).set(rate)

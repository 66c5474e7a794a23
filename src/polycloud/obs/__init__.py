"""Observability of the fleet, run by the control plane: the fleet-wide `/metrics` (federation), SLOs
with error budgets and burn-rate alerts, anomaly and drift detection, synthetic probes, and incidents.

`observer.Observer` is a thread of the control plane: it turns the gateways' load reports into
per-minute SLI rows, evaluates SLOs, detects anomalies, probes every (service, cluster), and turns
events into incidents. Pure parts (`slo`, `detect`) hold the arithmetic and are tested on their own.
"""

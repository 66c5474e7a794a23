"""The observer: load reports → SLI minutes → SLO report and burn alerts → incidents; anomalies → the
webhook and status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from polycloud.exchange import LoadReport
from polycloud.obs.observer import Observer, ObserverSettings
from polycloud.obs.series import MinuteSeries, TickValues
from polycloud.obs.webhook import Webhook
from polycloud.services.inspecting import Endpoints, fleet_status
from polycloud.state import Store, WorkloadInput, content_hash

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


@pytest.fixture(autouse=True)
def _now_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW as of this test, not of collection: in a long run the module may be imported many minutes
    before a test that compares it with the store's real clock (status shows the last 15 minutes)."""
    monkeypatch.setitem(globals(), "NOW", datetime.now(UTC).replace(second=30, microsecond=0))


def _service(name: str, slo: dict[str, Any] | None) -> WorkloadInput:
    spec: dict[str, Any] = {"kind": "Service", "metadata": {"name": name}, "spec": {"model": "m.onnx"}}
    if slo is not None:
        spec["spec"]["slo"] = slo
    placement = [{"cluster": "a", "role": "active", "replicas": 1}]
    return WorkloadInput(name, "Service", spec, content_hash(spec), placement, None)


def _report(service: str, cluster: str, rps: float, error_rate: float, p99: float) -> LoadReport:
    return LoadReport(service, cluster, 0.0, 0.0, rps, error_rate, p99)


class Hook:
    """A webhook receiver on an httpx mock transport."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(json.loads(request.content))
        return httpx.Response(204)


@pytest.fixture
def hook() -> Hook:
    return Hook()


@pytest.fixture
def observer(store: Store, hook: Hook) -> Iterator[Observer]:
    webhook = Webhook("http://alerts.example/hook", client=httpx.Client(transport=httpx.MockTransport(hook)))
    made = Observer(store, ObserverSettings(), webhook=webhook, now=lambda: NOW)
    yield made
    made.close()


def test_the_series_turns_rates_into_counts() -> None:
    series = MinuteSeries()
    reports = [_report("s", "a", 10.0, 0.1, 50.0), _report("s", "a", 30.0, 0.0, 80.0)]
    series.add_load(reports, NOW, 2.0)
    series.add_probe("s", "a", False, 12.0, NOW)
    [probe, traffic] = series.flush(NOW)
    assert (traffic.requests, traffic.errors, traffic.p99_ms) == (80.0, 2.0, 80.0)
    assert (probe.source, probe.requests, probe.errors) == ("probe", 1.0, 1.0)
    assert series.close_tick() == {("s", "a"): TickValues(40.0, 2.0 / 80.0, 80.0)}
    assert series.flush(NOW + timedelta(minutes=1)) != []  # the old minute is written once more, then dropped
    assert series.flush(NOW + timedelta(minutes=1)) == []


def test_a_fast_burn_pages_opens_an_incident_and_alerts(store: Store, observer: Observer, hook: Hook) -> None:
    workloads = [_service("fraud", {"availability": 0.999, "p99Ms": 100}), _service("quiet", None)]
    store.apply(workloads=workloads, documents=[], author="test", message="")
    store.report_load(
        "gw", [_report("fraud", "a", 100.0, 0.05, 40.0), _report("fraud", "b", 100.0, 0.0, 150.0)]
    )
    observer.series.add_load(store.load(5), NOW, 60.0)
    store.put_sli_minutes(observer.series.flush(NOW))

    report = observer.evaluate(NOW)
    fraud = next(s for s in report["services"] if s["service"] == "fraud")
    overall = fraud["overall"]
    assert overall["requests"] == 12000 and overall["errors"] == 300
    assert overall["burnRates"]["5m"] == pytest.approx(25.0)  # 2.5 % errors on a 0.1 % budget
    assert overall["alerts"] == ["page", "ticket"]
    assert overall["latencyCompliance"] == pytest.approx(0.5)  # cluster b's minute missed 100 ms
    by_cluster = {c["cluster"]: c for c in fraud["clusters"]}
    assert by_cluster["b"]["alerts"] == [] and by_cluster["a"]["burnRates"]["1h"] == pytest.approx(50.0)
    quiet = next(s for s in report["services"] if s["service"] == "quiet")
    assert quiet["declared"] is False and quiet["overall"]["budgetLeft"] == 1.0

    observer.read_events(NOW)
    incidents = {i.kind: i for i in store.incidents(state="open")}
    assert set(incidents) == {"slo-burn", "slo-budget"}  # 2.5 % errors spend a 0.1 % budget at once
    assert incidents["slo-burn"].timeline[0].reason == "SloBurnAlert"
    reasons = {e.reason for e in store.events(limit=10)}
    assert {"SloBurnAlert", "SloBudgetExhausted"} <= reasons
    observer.webhook.close()  # type: ignore[union-attr]
    assert {p["kind"] for p in hook.posts} == {"slo-burn", "incident"}


def test_anomalies_are_recorded_shown_in_status_and_posted(
    store: Store, observer: Observer, hook: Hook
) -> None:
    for _ in range(20):
        observer.detect({("s", "a"): TickValues(100.0, 0.0, 20.0)}, NOW)
    [anomaly] = observer.detect({("s", "a"): TickValues(100.0, 0.0, 400.0)}, NOW)
    assert anomaly.signal == "latency" and anomaly.value == 400.0
    assert observer.detect({("s", "a"): TickValues(100.0, 0.0, 410.0)}, NOW) == []  # one per episode
    status = fleet_status(store, Endpoints(api_url="http://api", gateway_url="http://gw"))
    assert [a["signal"] for a in status["anomalies"]] == ["latency"]
    observer.webhook.close()  # type: ignore[union-attr]
    assert hook.posts[0]["kind"] == "anomaly" and hook.posts[0]["detail"]["signal"] == "latency"


def test_a_bad_webhook_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        Webhook("ftp://x")


def test_a_pass_reads_load_writes_minutes_and_evaluates(store: Store) -> None:
    store.apply(workloads=[_service("fraud", {"availability": 0.99})], documents=[], author="t", message="")
    observer = Observer(store, ObserverSettings(tick_every=1, slo_every_s=0.0), now=lambda: NOW)
    try:
        store.report_load("gw", [_report("fraud", "a", 50.0, 0.0, 12.0)])
        observer.step()
        observer.step()
        [row] = store.sli_minutes(NOW - timedelta(minutes=1))
        assert row.service == "fraud" and row.requests > 0 and row.errors == 0
        assert observer.metrics.registry.get_sample_value(
            "polycloud_slo_budget_left_ratio", {"service": "fraud", "cluster": ""}
        ) == pytest.approx(1.0)
    finally:
        observer.close()

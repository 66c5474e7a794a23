"""`GET /metrics` (the fleet's, unauthenticated), `/api/v1/slo`, `/api/v1/incidents`, `/api/v1/anomalies`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from polycloud.api.app import create_app
from polycloud.catalog import load_catalog
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.inspecting import Endpoints
from polycloud.state import EventInput, Store
from polycloud.state.obs_records import AnomalyInput, SliMinute


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Store, dict[str, str]]]:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    ctx = ApiContext(
        store=store,
        fleet=FleetService(store, load_catalog()),
        endpoints=Endpoints("http://api", "http://127.0.0.1:9"),
        wake=lambda: None,
        shutdown=lambda: None,
    )
    app = create_app(ctx)
    own = CollectorRegistry()
    Counter("polycloud_controller_failovers", "f", ["service", "cluster"], registry=own).labels(
        "s", "a"
    ).inc()
    app.state.registries = [own]
    secret, _ = store.create_token(name="v", role="viewer", project=None, expires_at=None)
    yield TestClient(app, base_url="http://localhost"), store, {"authorization": f"Bearer {secret}"}
    store.close()


def test_metrics_need_no_token_and_say_which_sources_answered(
    api: tuple[TestClient, Store, dict[str, str]],
) -> None:
    client, _, _ = api
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert 'polycloud_controller_failovers_total{cluster="a",service="s"} 1.0' in answer.text
    assert 'polycloud_federation_up{source="gateway"} 0.0' in answer.text


def test_slo_incidents_and_anomalies(api: tuple[TestClient, Store, dict[str, str]]) -> None:
    client, store, viewer = api
    assert client.get("/api/v1/slo").status_code == 401
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store.put_sli_minutes([SliMinute("s", "a", "traffic", now, 100, 1, 10)])
    report = client.get("/api/v1/slo", headers=viewer).json()
    assert report["services"] == [] and report["alerts"] == []  # no Service declared yet
    store.add_events([EventInput("warning", "FailoverStarted", "down", workload="s", cluster="a")])
    store.open_incident("failover", "failover of s", [store.last_event_id()], service="s", cluster="a")
    [incident] = client.get("/api/v1/incidents", headers=viewer, params={"state": "open"}).json()
    assert incident["kind"] == "failover" and incident["timeline"][0]["reason"] == "FailoverStarted"
    assert client.get("/api/v1/incidents", headers=viewer, params={"state": "bogus"}).status_code == 400
    store.add_anomalies([AnomalyInput("s", "a", "rps", 0, 100, -9, "traffic fell")])
    [anomaly] = client.get("/api/v1/anomalies", headers=viewer).json()
    assert anomaly["message"] == "traffic fell"


def test_a_project_token_sees_only_its_services(api: tuple[TestClient, Store, dict[str, str]]) -> None:
    client, store, _ = api
    secret, _ = store.create_token(name="p", role="viewer", project="alpha", expires_at=None)
    project = {"authorization": f"Bearer {secret}"}
    store.add_events([EventInput("warning", "FailoverStarted", "down", workload="s", cluster="a")])
    store.open_incident("failover", "failover of s", [store.last_event_id()], service="s", cluster="a")
    store.add_anomalies([AnomalyInput("s", "a", "rps", 0, 100, -9, "traffic fell")])
    assert client.get("/api/v1/incidents", headers=project).json() == []
    assert client.get("/api/v1/anomalies", headers=project).json() == []
    assert client.get("/api/v1/slo", headers=project).json()["services"] == []

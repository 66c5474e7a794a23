"""Anomaly detection per inference key: the gateways' per-key reports summed into ticks, the same robust
detector per key, and anomalies that name the key (id and name, never the key) in status and the webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from polycloud.exchange import KeyLoad
from polycloud.gateway.keyload import KeyWindow
from polycloud.gateway.sourcing import StoreLoadSink
from polycloud.obs.observer import Observer, ObserverSettings
from polycloud.obs.series import KeyTicks, TickValues
from polycloud.obs.webhook import Webhook
from polycloud.services.inspecting import Endpoints, fleet_status
from polycloud.state import Store

from .test_observer import Hook


@pytest.fixture
def now() -> datetime:
    """The observer's clock: this test's own now, so that anomalies it records are fresh for the store."""
    return datetime.now(UTC).replace(microsecond=0)


def test_key_ticks_sum_gateways_and_read_silent_keys_as_zero() -> None:
    ticks = KeyTicks(forget_after=1)
    ticks.add([KeyLoad(1, "m", 4.0, 0.5, 10.0, 5.0, "a"), KeyLoad(1, "m", 6.0, 0.0, 30.0, 8.0, "b")], 1.0)
    ticks.add([KeyLoad(1, "m", 10.0, 0.0, 20.0, 5.0, "a")], 1.0)
    assert ticks.close() == {("m", 1): TickValues(10.0, 0.1, 25.0)}
    ticks.add([], 1.0)
    assert ticks.close() == {("m", 1): TickValues(0.0, 0.0, 0.0)}
    assert ticks.close() == {}  # no time passed
    ticks.add([], 1.0)
    assert ticks.close() == {}  # silent for more than one tick: forgotten


def test_a_key_whose_traffic_spikes_is_flagged_once_per_episode(store: Store, now: datetime) -> None:
    secret, record = store.create_inference_key(
        service="m", name="mobile", rps=100, burst=100, monthly_quota=None
    )
    observer = Observer(store, now=lambda: now)
    try:
        for _ in range(20):
            assert observer.detect_keys({("m", record.id): TickValues(5.0, 0.0, 10.0)}, now) == []
        [anomaly] = observer.detect_keys({("m", record.id): TickValues(80.0, 0.0, 10.0)}, now)
        assert (anomaly.signal, anomaly.key_id, anomaly.key_name, anomaly.cluster) == (
            "rps",
            record.id,
            "mobile",
            "*",
        )
        assert f"key #{record.id} (mobile)" in anomaly.message
        assert observer.detect_keys({("m", record.id): TickValues(85.0, 0.0, 10.0)}, now) == []
        assert secret not in json.dumps([a.to_json() for a in store.anomalies(60)])
    finally:
        observer.close()


def test_per_key_errors_from_the_gateway_to_status_and_webhook(store: Store, now: datetime) -> None:
    """Gateway window → store (the gateway's sink) → observer passes → anomaly in status and webhook."""
    secret, quiet = store.create_inference_key(
        service="m", name="batch", rps=100, burst=100, monthly_quota=None
    )
    _, noisy = store.create_inference_key(service="m", name="partner", rps=100, burst=100, monthly_quota=None)
    hook = Hook()
    webhook = Webhook("http://alerts.example/hook", client=httpx.Client(transport=httpx.MockTransport(hook)))
    observer = Observer(store, ObserverSettings(tick_every=1), webhook=webhook, now=lambda: now)
    sink, window = StoreLoadSink(store), KeyWindow()

    def second(noisy_answers: int, errors: int) -> None:
        for _ in range(20):
            window.answered(quiet.id, "m", 200, 0.004)
        for i in range(noisy_answers):
            window.answered(noisy.id, "m", 500 if i < errors else 200, 0.004)
        sink.report_keys("gw", window.close(1.0))
        observer.step()

    try:
        for _ in range(15):
            second(noisy_answers=20, errors=0)
        assert store.anomalies(60) == []
        second(noisy_answers=400, errors=200)  # the partner's traffic spikes, half of it failing
        found = store.anomalies(60)
        assert {(a.signal, a.key_id, a.key_name) for a in found} == {
            ("rps", noisy.id, "partner"),
            ("error_rate", noisy.id, "partner"),
        }
        status = fleet_status(store, Endpoints(api_url="http://api", gateway_url="http://gw"))
        assert [a.get("key") for a in status["anomalies"]] == [{"id": noisy.id, "name": "partner"}] * 2
        webhook.close()
        assert [p["detail"]["key"] for p in hook.posts] == [{"id": noisy.id, "name": "partner"}] * 2
        assert secret not in json.dumps(hook.posts) and secret not in json.dumps(status)
    finally:
        observer.close()

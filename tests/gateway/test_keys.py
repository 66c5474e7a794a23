"""Inference keys at the gateway: 401 without a valid key, 429 over rate or quota, counts flushed in the
background and shared between gateways, keys never forwarded to replicas."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from polycloud.errors import TransientError
from polycloud.exchange import KeyGrant
from polycloud.gateway import GatewaySettings, StaticRouteSource, create_app
from polycloud.gateway.keys import KeyGuard, hash_key, seconds_to_next_month, utc_month
from polycloud.gateway.running import SERVER_OPTIONS

from .support import FAST, INFER_BODY, Gateway, MakeStub, ServerThread, Stub, replica, table

KEY = "pk_test-key-1"
OTHER = "pk_test-key-2"
MONTH = "2026-11"
NOV_15 = datetime(2026, 11, 15, tzinfo=UTC).timestamp()


class FakeSource:
    """Keys set by hand; flushed counts are added to them like the store does."""

    def __init__(self, keys: list[KeyGrant]) -> None:
        self.keys = keys
        self.flushes: list[tuple[str, dict[int, int]]] = []
        self.token_flushes: list[tuple[str, dict[int, int]]] = []
        self.fail = False
        self._lock = threading.Lock()

    def snapshot(self) -> Sequence[KeyGrant]:
        if self.fail:
            raise TransientError("database down")
        with self._lock:
            return list(self.keys)

    def flush(self, month: str, counts: dict[int, int], tokens: dict[int, int]) -> None:
        if self.fail:
            raise TransientError("database down")
        with self._lock:
            if counts:
                self.flushes.append((month, counts))
            if tokens:
                self.token_flushes.append((month, tokens))
            self.keys = [
                replace(k, used=k.used + counts.get(k.id, 0), tokens_used=k.tokens_used + tokens.get(k.id, 0))
                for k in self.keys
            ]


def limits(key_id: int = 1, key: str = KEY, **changes: object) -> KeyGrant:
    base = KeyGrant(key_id, "m", hash_key(key), rps=10.0, burst=2, monthly_quota=None, used=0, month=MONTH)
    return replace(base, **changes)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(*keys: KeyGrant, clock: Clock | None = None) -> tuple[KeyGuard, FakeSource]:
    source = FakeSource(list(keys))
    made = KeyGuard(source, clock=clock or Clock(), wall=lambda: NOV_15)
    asyncio.run(made.sync())
    return made, source


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


def test_a_service_without_keys_stays_open() -> None:
    made, _ = guard(limits())
    assert made.check("other-service", []) is None


def test_a_keyed_service_needs_a_known_key() -> None:
    made, _ = guard(limits())
    missing = made.check("m", [])
    assert missing is not None and missing.status == 401 and "needs an inference key" in missing.message
    unknown = made.check("m", bearer("pk_wrong"))
    assert unknown is not None and unknown.status == 401 and "unknown or revoked" in unknown.message
    assert made.check("m", bearer(KEY)) is None
    assert made.check("m", [(b"x-api-key", KEY.encode())]) is None


def test_a_revoked_key_is_refused_and_keeps_the_service_closed() -> None:
    made, _ = guard(limits(revoked=True))
    denial = made.check("m", bearer(KEY))
    assert denial is not None and denial.status == 401
    assert made.check("m", []) is not None


def test_nothing_is_admitted_before_the_first_snapshot() -> None:
    made = KeyGuard(FakeSource([limits()]))
    denial = made.check("open-or-not", [])
    assert denial is not None and denial.status == 503


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    made, _ = guard(limits(rps=10.0, burst=2), clock=clock)
    assert made.check("m", bearer(KEY)) is None
    assert made.check("m", bearer(KEY)) is None
    denial = made.check("m", bearer(KEY))
    assert denial is not None and denial.status == 429
    assert "rate limit of 10 requests/s (burst 2)" in denial.message
    assert (b"retry-after", b"1") in denial.headers
    clock.now += 0.1  # one token back
    assert made.check("m", bearer(KEY)) is None
    assert made.check("m", bearer(KEY)) is not None


def test_each_key_has_its_own_bucket() -> None:
    made, _ = guard(limits(1, KEY, burst=1), limits(2, OTHER, burst=1))
    assert made.check("m", bearer(KEY)) is None
    assert made.check("m", bearer(KEY)) is not None
    assert made.check("m", bearer(OTHER)) is None


def test_the_monthly_quota_counts_the_store_and_this_gateway() -> None:
    made, source = guard(limits(burst=100, monthly_quota=5, used=3))
    assert made.check("m", bearer(KEY)) is None
    assert made.check("m", bearer(KEY)) is None
    denial = made.check("m", bearer(KEY))
    assert denial is not None and denial.status == 429 and "monthly quota of 5 requests" in denial.message
    retry = dict(denial.headers)[b"retry-after"]
    assert int(retry) == seconds_to_next_month(NOV_15) == 16 * 86400

    asyncio.run(made.sync())
    assert source.flushes == [(MONTH, {1: 2})]
    assert source.keys[0].used == 5
    assert made.check("m", bearer(KEY)) is not None  # still over after the totals came back


def test_usage_of_another_gateway_is_seen_after_a_sync() -> None:
    made, source = guard(limits(burst=100, monthly_quota=10))
    assert made.check("m", bearer(KEY)) is None
    source.keys = [replace(source.keys[0], used=9)]  # the other gateways' counts reached the store
    asyncio.run(made.sync())
    assert made.check("m", bearer(KEY)) is not None  # 9 + this gateway's 1 flushed = 10


def test_counts_survive_a_failed_sync_and_are_flushed_once() -> None:
    made, source = guard(limits(burst=100))
    for _ in range(3):
        assert made.check("m", bearer(KEY)) is None
    source.fail = True
    assert asyncio.run(made.sync()) is False
    source.fail = False
    assert asyncio.run(made.sync()) is True
    assert source.flushes == [(MONTH, {1: 3})]


def test_months_are_utc_calendar_months() -> None:
    assert utc_month(datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp()) == "2026-12"
    assert seconds_to_next_month(datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp()) == 60


# -- through a real gateway -------------------------------------------------------------------------


@pytest.fixture
def keyed_gateway(make_stub: MakeStub) -> Iterator[tuple[Gateway, FakeSource, Stub]]:
    stub = make_stub("c1")
    source = FakeSource([limits(burst=3, rps=0.5)])
    routes = StaticRouteSource(table([replica(stub.server, "c1")]))
    app = create_app(routes, GatewaySettings(**FAST), rng=random.Random(7), keys=source)
    gateway = Gateway(app, ServerThread(app, lifespan="on", **SERVER_OPTIONS).start(), routes)
    yield gateway, source, stub
    gateway.server.stop()


def test_the_gateway_answers_401_then_serves_then_429(
    keyed_gateway: tuple[Gateway, FakeSource, Stub], client: httpx.Client
) -> None:
    gateway, _, stub = keyed_gateway
    url = f"{gateway.url}/v2/models/m/infer"
    refused = client.post(url, json=INFER_BODY)
    assert refused.status_code == 401 and "needs an inference key" in refused.json()["error"]
    assert refused.headers["www-authenticate"].startswith("Bearer")
    answers = [
        client.post(url, json=INFER_BODY, headers={"authorization": f"Bearer {KEY}"}) for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert "rate limit" in answers[-1].json()["error"]
    seen = stub.replica.seen_headers
    assert len(seen) == 3
    assert all("authorization" not in h and "x-api-key" not in h for h in seen)
    assert client.get(f"{gateway.url}/v2/health/ready").status_code == 200  # health stays open

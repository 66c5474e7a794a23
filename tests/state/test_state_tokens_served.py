"""Tokens as the unit in the store: LLM tokens of load reports summed per (service, cluster) and hour,
inference keys with token limits and token usage, and migration 0015 over a database that has data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError

from polycloud.errors import UserError
from polycloud.exchange import LoadReport
from polycloud.state import Store
from polycloud.state.connecting import make_engine, writer
from polycloud.state.migrating import HEAD, alembic_config, current_revision, upgrade
from polycloud.state.tables import UTCDateTime

from .support import T0, FakeClock


def row(service: str, cluster: str, prompt: int = 0, completion: int = 0) -> LoadReport:
    base = LoadReport(
        service, cluster, in_flight=1.0, in_flight_mean=1.0, rps=2.0, error_rate=0.0, p99_ms=5.0
    )
    return replace(base, prompt_tokens=prompt, completion_tokens=completion)


def served(store: Store, since: object = None) -> dict[tuple[str, str], tuple[int, int]]:
    return {(t.service, t.cluster): (t.prompt, t.completion) for t in store.tokens_served(since)}  # type: ignore[arg-type]


def test_every_gateways_reports_add_up_per_service_cluster_and_hour(
    open_store: Callable[[], Store], clock: FakeClock
) -> None:
    first, second = open_store(), open_store()
    first.report_load("gw-1", [row("chat", "aws", 100, 40), row("chat", "gcp", 10, 5), row("iris", "aws")])
    second.report_load("gw-2", [row("chat", "aws", 7, 3)])
    first.report_load("gw-1", [row("chat", "aws", 1, 1)])  # the next window of gw-1: added, not replaced
    assert served(first) == {("chat", "aws"): (108, 44), ("chat", "gcp"): (10, 5)}  # iris served none
    [latest] = [r for r in second.load(10.0) if r.gateway_id == "gw-1"]
    assert (latest.prompt_tokens, latest.completion_tokens) == (1, 1)  # the load rows keep the last window

    clock.advance(3600)
    second.report_load("gw-2", [row("chat", "aws", 1000, 0)])
    assert served(first)[("chat", "aws")] == (1108, 44)
    assert served(first, clock.now)[("chat", "aws")] == (1000, 0)  # from the hour `since` falls in
    assert served(first, T0.replace(minute=59))[("chat", "aws")] == (1108, 44)


def test_a_failed_report_adds_no_tokens(store: Store) -> None:
    with pytest.raises(UserError):
        store.report_load(
            "gw-1", [row("chat", "aws", 5, 5), row("chat", "aws", 1, 1)]
        )  # two rows for one pair
    assert served(store) == {}


def test_keys_keep_token_limits_and_the_months_tokens(store: Store, clock: FakeClock) -> None:
    _, plain = store.create_inference_key(service="chat", name="a", rps=5, burst=10, monthly_quota=None)
    _, tokened = store.create_inference_key(
        service="chat",
        name="b",
        rps=5,
        burst=10,
        monthly_quota=100,
        tokens_per_minute=6000,
        monthly_tokens=10**12,
    )
    assert (tokened.tokens_per_minute, tokened.monthly_tokens, tokened.tokens_this_month) == (6000, 10**12, 0)
    assert (plain.tokens_per_minute, plain.monthly_tokens) == (None, None)

    store.add_key_usage("2025-03", {tokened.id: 2}, {tokened.id: 300, plain.id: 50})
    store.add_key_usage("2025-03", {tokened.id: 1}, {tokened.id: 2**33})  # past 32 bits
    store.add_key_usage("2025-03", {plain.id: 4})  # a gateway without token counts
    grants = {g.id: g for g in store.key_grants()}
    assert (grants[tokened.id].used, grants[tokened.id].tokens_used) == (3, 300 + 2**33)
    assert (grants[tokened.id].tokens_per_minute, grants[tokened.id].monthly_tokens) == (6000, 10**12)
    assert (grants[plain.id].used, grants[plain.id].tokens_used) == (4, 50)
    listed = {k.id: k for k in store.inference_keys()}
    assert listed[tokened.id].tokens_this_month == 300 + 2**33 and listed[plain.id].tokens_this_month == 50

    clock.advance(31 * 86400)  # April: a new month
    assert {g.tokens_used for g in store.key_grants()} == {0}


@pytest.mark.parametrize(
    ("limits", "complaint"),
    [
        ({"tokens_per_minute": 0}, "tokens per minute"),
        ({"monthly_tokens": -5}, "monthly token quota"),
        ({"monthly_tokens": 10**16}, "monthly token quota"),
    ],
)
def test_bad_token_limits_are_refused(store: Store, limits: dict[str, int], complaint: str) -> None:
    with pytest.raises(UserError, match=complaint):
        store.create_inference_key(service="m", name="k", rps=1, burst=1, monthly_quota=None, **limits)
    assert store.inference_keys() == []


def test_the_database_refuses_token_limits_below_one(store: Store) -> None:
    _, record = store.create_inference_key(service="m", name="k", rps=1, burst=1, monthly_quota=None)
    for column in ("tokens_per_minute", "monthly_tokens"):
        with pytest.raises(IntegrityError), store.engine.begin() as connection:
            connection.execute(
                text(f"UPDATE inference_keys SET {column} = 0 WHERE id = :i"), {"i": record.id}
            )


def test_migration_0015_keeps_the_keys_usage_and_load_of_a_0014_database(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        from alembic import command

        with writer(engine).begin() as connection:
            command.upgrade(alembic_config(connection), "0014")
        statements = (
            "INSERT INTO inference_keys (id, service, name, key_hash, prefix, rps, burst, monthly_quota,"
            " created_at, revoked) VALUES (1, 'chat', 'k', '"
            + "a" * 64
            + "', 'pk_abc', 5, 10, 100, :t, false)",
            "INSERT INTO key_usage (key_id, month, requests, updated_at) VALUES (1, '2025-03', 7, :t)",
            "INSERT INTO load_reports (gateway_id, service, cluster, in_flight, in_flight_mean, rps,"
            " error_rate, p99_ms, p50_ms, updated_at) VALUES ('gw', 'chat', 'aws', 1, 1, 1, 0, 1, 1, :t)",
        )
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement).bindparams(bindparam("t", T0, type_=UTCDateTime())))
        upgrade(engine)
        with engine.connect() as connection:
            assert current_revision(connection) == HEAD == "0016"
            key = connection.execute(
                text("SELECT tokens_per_minute, monthly_tokens FROM inference_keys")
            ).one()
            usage = connection.execute(text("SELECT requests, tokens FROM key_usage")).one()
            load = connection.execute(text("SELECT prompt_tokens, completion_tokens FROM load_reports")).one()
        assert tuple(key) == (None, None) and tuple(usage) == (7, 0) and tuple(load) == (0, 0)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE inference_keys SET monthly_tokens = 0"))
    finally:
        engine.dispose()

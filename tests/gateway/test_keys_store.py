"""Inference keys through the state store: only hashes kept, usage added by several gateways."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from polycloud.errors import NotFoundError, UserError
from polycloud.gateway.keys import KeyGuard, hash_key
from polycloud.gateway.keystore import StoreKeySource
from polycloud.state import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def test_only_the_hash_and_a_prefix_of_a_key_are_stored(store: Store) -> None:
    key, record = store.create_inference_key(service="m", name="ci", rps=5, burst=10, monthly_quota=100)
    assert key.startswith("pk_") and record.prefix == key[:10]
    with store.engine.connect() as connection:
        [row] = connection.execute(text("SELECT * FROM inference_keys")).all()
    assert row._mapping["key_hash"] == hash_key(key)
    assert all(key not in str(value) for value in row)


@pytest.mark.parametrize(
    ("limits", "complaint"),
    [
        ({"rps": 0, "burst": 1, "monthly_quota": None}, "rate limit"),
        ({"rps": float("nan"), "burst": 1, "monthly_quota": None}, "rate limit"),
        ({"rps": 1, "burst": 0, "monthly_quota": None}, "burst"),
        ({"rps": 1, "burst": 1, "monthly_quota": 0}, "monthly quota"),
    ],
)
def test_bad_limits_are_refused(store: Store, limits: dict[str, float], complaint: str) -> None:
    with pytest.raises(UserError, match=complaint):
        store.create_inference_key(service="m", name="k", **limits)  # type: ignore[arg-type]
    assert store.inference_keys() == []


def test_two_gateways_share_one_monthly_quota(store: Store) -> None:
    key, record = store.create_inference_key(service="m", name="k", rps=1000, burst=1000, monthly_quota=6)
    headers = [(b"x-api-key", key.encode())]
    first, second = KeyGuard(StoreKeySource(store)), KeyGuard(StoreKeySource(store))

    async def scenario() -> list[int]:
        await first.sync()
        await second.sync()
        admitted = [first.check("m", headers) is None for _ in range(3)]
        admitted += [second.check("m", headers) is None for _ in range(2)]
        await first.sync()
        await second.sync()
        admitted += [second.check("m", headers) is None for _ in range(3)]
        await second.sync()
        return [int(a) for a in admitted]

    assert asyncio.run(scenario()) == [1, 1, 1, 1, 1, 1, 0, 0]
    assert store.inference_keys()[0].used_this_month == 6
    first.close()
    second.close()
    assert record.id == store.inference_keys()[0].id


def test_revocation_reaches_the_gateway_at_its_next_sync(store: Store) -> None:
    key, record = store.create_inference_key(service="m", name="k", rps=10, burst=10, monthly_quota=None)
    guard = KeyGuard(StoreKeySource(store))
    headers = [(b"authorization", f"Bearer {key}".encode())]
    asyncio.run(guard.sync())
    assert guard.check("m", headers) is None
    store.revoke_inference_key(record.id)
    asyncio.run(guard.sync())
    denial = guard.check("m", headers)
    assert denial is not None and denial.status == 401
    with pytest.raises(NotFoundError):
        store.revoke_inference_key(999)
    guard.close()


def test_two_gateways_share_one_monthly_token_quota(store: Store) -> None:
    key, record = store.create_inference_key(
        service="chat", name="k", rps=1000, burst=1000, monthly_quota=None, monthly_tokens=1000
    )
    headers = [(b"x-api-key", key.encode())]
    first, second = KeyGuard(StoreKeySource(store)), KeyGuard(StoreKeySource(store))

    async def scenario() -> list[bool]:
        await first.sync()
        await second.sync()
        admitted = [first.check("chat", headers) is None, second.check("chat", headers) is None]
        first.spend_tokens(record.id, "chat", 600)
        second.spend_tokens(record.id, "chat", 300)
        admitted.append(second.check("chat", headers) is None)  # it knows its own 300 only: < 1000
        await first.sync()  # first's 600 reach the store
        await second.sync()  # and second reads them back: 600 + 300 + ~300 in flight >= 1000
        admitted.append(second.check("chat", headers) is None)
        return admitted

    assert asyncio.run(scenario()) == [True, True, True, False]
    [listed] = store.inference_keys()
    assert (listed.tokens_this_month, listed.monthly_tokens, listed.used_this_month) == (900, 1000, 3)
    first.close()
    second.close()

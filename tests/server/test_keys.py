"""Shared keys: with PostgreSQL the master key is required and must be the fleet's; the fingerprint key
is derived from it, so every server computes the same replica fingerprints."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from polycloud.errors import UserError
from polycloud.server.keys import fleet_keys
from polycloud.state import Store

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_store() -> Iterator[Store]:
    schema = f"pc_keys_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    store = Store.open(url)
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.mark.postgres
def test_a_shared_database_needs_the_master_key(postgres_store: Store, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="POLYCLOUD_MASTER_KEY is required with PostgreSQL"):
        fleet_keys(None, tmp_path, postgres_store, shared=True)


@pytest.mark.postgres
def test_servers_with_the_same_key_agree_and_another_key_is_refused(
    postgres_store: Store, tmp_path: Path
) -> None:
    key = _key()
    first = fleet_keys(key, tmp_path / "a", postgres_store, shared=True)
    second = fleet_keys(key, tmp_path / "b", postgres_store, shared=True)  # another machine's home
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 32
    assert not (tmp_path / "a" / "fingerprint.key").exists()  # derived, never generated per home
    with pytest.raises(UserError, match="is not the master key of this database's secrets"):
        fleet_keys(_key(), tmp_path / "c", postgres_store, shared=True)
    rotated = fleet_keys(
        f"{_key()},{key}", tmp_path / "d", postgres_store, shared=True
    )  # old key in the ring
    assert rotated.fingerprint == first.fingerprint


def test_the_embedded_home_keeps_its_own_keys(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        keys = fleet_keys(None, tmp_path, store, shared=False)
        assert (tmp_path / "master.key").exists() and (
            tmp_path / "fingerprint.key"
        ).read_bytes() == keys.fingerprint

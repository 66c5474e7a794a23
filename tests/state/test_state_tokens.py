"""API tokens: only a hash is stored; revoked and expired tokens do not authenticate."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import text

from polycloud.errors import NotFoundError, UserError
from polycloud.state import Store

from .support import T0, FakeClock


def test_only_the_hash_of_a_token_is_stored(store: Store) -> None:
    token, record = store.create_token(name="ci", role="deployer", project="risk", expires_at=None)

    assert token.startswith("pc_") and len(token) > 40
    assert (record.name, record.role, record.project, record.revoked) == ("ci", "deployer", "risk", False)
    assert record.created_at == T0
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM tokens")).all()
    assert len(rows) == 1
    assert rows[0]._mapping["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in rows[0])
    assert store.tokens() == [record]


def test_authenticate_accepts_valid_tokens_only(store: Store) -> None:
    token, record = store.create_token(name="alice", role="admin", project=None, expires_at=None)
    other, _ = store.create_token(name="bob", role="viewer", project=None, expires_at=None)

    assert store.authenticate(token) == record
    assert store.authenticate(token + "x") is None
    assert store.authenticate("") is None
    assert store.authenticate("pc_unknown") is None

    store.revoke_token(record.id)
    store.revoke_token(record.id)
    assert store.authenticate(token) is None
    assert store.authenticate(other) is not None
    assert [t.revoked for t in store.tokens()] == [True, False]
    with pytest.raises(NotFoundError, match="no token with id 999"):
        store.revoke_token(999)


def test_expired_tokens_do_not_authenticate(store: Store, clock: FakeClock) -> None:
    token, record = store.create_token(
        name="temp", role="viewer", project=None, expires_at=T0 + timedelta(minutes=5)
    )
    assert record.expires_at == T0 + timedelta(minutes=5)
    clock.advance(299)
    assert store.authenticate(token) is not None
    clock.advance(1)
    assert store.authenticate(token) is None


def test_token_requests_are_validated(store: Store) -> None:
    with pytest.raises(UserError, match="token role must be one of viewer, deployer, admin"):
        store.create_token(name="x", role="root", project=None, expires_at=None)
    with pytest.raises(UserError, match="timezone-aware"):
        store.create_token(name="x", role="viewer", project=None, expires_at=T0.replace(tzinfo=None))
    with pytest.raises(UserError, match="name"):
        store.create_token(name=" ", role="viewer", project=None, expires_at=None)
    assert store.tokens() == []

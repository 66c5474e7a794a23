"""Dashboard login codes and sessions: single use, short-lived, never outliving their token (on SQLite
and PostgreSQL, through the `store` and `clock` fixtures of conftest.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polycloud.errors import NotFoundError
from polycloud.state import Store

from .support import FakeClock


def test_a_code_is_traded_once_for_a_session_of_the_same_token(store: Store) -> None:
    _, token = store.create_token(name="ada", role="deployer", project="p", expires_at=None)
    code = store.issue_login_code(token.id, timedelta(minutes=2))
    traded = store.redeem_login_code(code, timedelta(hours=12))
    assert traded is not None
    session, who = traded
    assert who == token
    assert store.authenticate_web_session(session) == token
    assert store.redeem_login_code(code, timedelta(hours=12)) is None
    assert store.authenticate_web_session(code) is None  # a code is not a session
    assert store.authenticate(session) is None  # nor a session an API token


def test_codes_and_sessions_expire(store: Store, clock: FakeClock) -> None:
    _, token = store.create_token(name="ada", role="viewer", project=None, expires_at=None)
    code = store.issue_login_code(token.id, timedelta(minutes=2))
    session = store.open_web_session(token.id, timedelta(hours=12))
    clock.now += timedelta(minutes=3)
    assert store.redeem_login_code(code, timedelta(hours=12)) is None
    assert store.authenticate_web_session(session) == token
    clock.now += timedelta(hours=12)
    assert store.authenticate_web_session(session) is None


def test_a_session_never_outlives_its_token(store: Store, clock: FakeClock) -> None:
    _, short = store.create_token(
        name="tmp", role="viewer", project=None, expires_at=clock.now + timedelta(minutes=30)
    )
    session = store.open_web_session(short.id, timedelta(hours=12))
    clock.now += timedelta(minutes=31)
    assert store.authenticate_web_session(session) is None
    _, revoked = store.create_token(name="gone", role="viewer", project=None, expires_at=None)
    other = store.open_web_session(revoked.id, timedelta(hours=12))
    store.revoke_token(revoked.id)
    assert store.authenticate_web_session(other) is None
    with pytest.raises(NotFoundError):
        store.issue_login_code(revoked.id, timedelta(minutes=2))


def test_logging_out_ends_only_that_session(store: Store) -> None:
    _, token = store.create_token(name="ada", role="viewer", project=None, expires_at=None)
    one, two = (store.open_web_session(token.id, timedelta(hours=1)) for _ in range(2))
    store.end_web_session(one)
    assert store.authenticate_web_session(one) is None
    assert store.authenticate_web_session(two) == token

"""Who is calling: a token or a browser session stands for a token record; logins are audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polycloud.services import sessions
from polycloud.services.governance import UnauthenticatedError
from polycloud.state import Store, TokenRecord


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    yield opened
    opened.close()


@pytest.fixture
def made(store: Store) -> tuple[str, TokenRecord]:
    return store.create_token(name="ana", role="deployer", project="risk", expires_at=None)


def test_a_token_and_a_session_authenticate_as_the_token(store: Store, made: tuple[str, TokenRecord]) -> None:
    secret, record = made
    assert sessions.authenticate(store, token=secret).id == record.id
    opened = sessions.login(store, token=f" {secret} ")
    assert opened.who.id == record.id
    assert sessions.authenticate(store, session=opened.secret).id == record.id

    sessions.logout(store, opened.secret)
    with pytest.raises(UnauthenticatedError, match="unknown, revoked or expired token or session"):
        sessions.authenticate(store, session=opened.secret)
    with pytest.raises(UnauthenticatedError):
        sessions.authenticate(store, token="pc_nope")
    with pytest.raises(UnauthenticatedError):
        sessions.authenticate(store)


def test_a_login_code_works_once(store: Store, made: tuple[str, TokenRecord]) -> None:
    _, record = made
    code = sessions.issue_code(store, record)
    opened = sessions.login(store, code=f"{code}\n")
    assert opened.who.id == record.id and opened.secret != code
    with pytest.raises(UnauthenticatedError, match="unknown, used or expired"):
        sessions.login(store, code=code)


def test_logins_are_audited_with_how_and_refusals_are_not(
    store: Store, made: tuple[str, TokenRecord]
) -> None:
    secret, record = made
    with pytest.raises(UnauthenticatedError, match="unknown, revoked or expired token"):
        sessions.login(store, token="pc_nope")
    assert store.audit_log(limit=10) == []
    sessions.login(store, token=secret)
    sessions.login(store, code=sessions.issue_code(store, record))
    entries = store.audit_log(limit=10)
    assert [(e.action, e.actor, e.detail["with"]) for e in entries] == [
        ("dashboard.login", "ana#1", "code"),
        ("dashboard.login", "ana#1", "token"),
    ]
    assert secret not in repr(entries)

"""Fixtures for the state store tests: every store test runs on SQLite and on PostgreSQL.

PostgreSQL tests each get a fresh schema (selected through the URL's `options=-csearch_path=...`, so
Alembic's version table lands there too) that is dropped afterwards. They need the server at
`POLYCLOUD_TEST_POSTGRES_URL` (default: trust auth on 127.0.0.1:5432, database `test`) and fail, never
skip, when it is unreachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from polycloud.state import Store

from .support import FakeClock

POSTGRES_URL = os.environ.get(
    "POLYCLOUD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_admin(statement: str) -> None:
    engine = create_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except OperationalError as e:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required for @postgres tests: {e.orig}")
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file under tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'state.db'}"
        return
    schema = f"polycloud_test_{uuid.uuid4().hex[:12]}"
    _postgres_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        _postgres_admin(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock every store from `open_store` and `store` uses."""
    return FakeClock()


@pytest.fixture
def open_store(db_url: str, clock: FakeClock) -> Iterator[Callable[[], Store]]:
    """Open (more) stores on the test database; all are closed at teardown."""
    opened: list[Store] = []

    def _open() -> Store:
        opened.append(Store.open(db_url, clock=clock))
        return opened[-1]

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    """A store on a fresh database."""
    return open_store()

"""`StoreCore`: connecting, migrating and short transactions; the base of `polycloud.state.Store`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from polycloud.errors import ConflictError, TransientError, UserError
from polycloud.state.connecting import lock, make_engine, mask_url, writer
from polycloud.state.migrating import upgrade

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _first_line(error: DBAPIError) -> str:
    lines = str(error.orig).strip().splitlines()
    return lines[0].strip() if lines else type(error.orig).__name__


class StoreCore:
    """Connection handling shared by every part of the store."""

    def __init__(self, engine: Engine, *, clock: Clock = _utcnow) -> None:
        """Wrap an engine whose database is already migrated; prefer `Store.open`."""
        self._engine = engine
        self._clock = clock
        self._label = engine.url.render_as_string(hide_password=True)
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = sessionmaker(bind=writer(engine), expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, clock: Clock | None = None) -> Self:
        """Connect to the database at `url`, migrate it to the current schema and return a store.

        Safe to call from several processes at once on the same database.

        Args:
            url: `sqlite:////abs/path/state.db` (the folder is created) or
                `postgresql+psycopg://user@host:port/db` (a `?options=-csearch_path%3DSCHEMA` query selects
                a schema).
            clock: Source of "now" for timestamps and token expiry; the system UTC clock by default.

        Raises:
            UserError: The URL is invalid, the database unreachable, or its schema newer than this
                polycloud. The one-line message names the URL with any password masked.
        """
        engine = make_engine(url)
        label = mask_url(url)
        try:
            upgrade(engine)
        except DBAPIError as e:
            engine.dispose()
            raise UserError(f"cannot open the state database {label}: {_first_line(e)}") from e
        return cls(engine, clock=clock or _utcnow)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and diagnostics; use the methods for state)."""
        return self._engine

    def close(self) -> None:
        """Release every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _session(self, *, write: bool, lock_name: str | None = None) -> Iterator[Session]:
        try:
            with (self._writer if write else self._reader).begin() as session:
                if lock_name is not None:
                    lock(session.connection(), lock_name)
                yield session
        except IntegrityError as e:
            raise ConflictError(f"the state database refused the change: {_first_line(e)}") from e
        except OperationalError as e:
            raise TransientError(f"state database {self._label} unavailable: {_first_line(e)}") from e

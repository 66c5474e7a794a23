"""`StoreCore`: connecting, migrating and short transactions; the base of `polycloud.state.Store`."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from polycloud.errors import ConflictError, FencedError, TransientError, UserError
from polycloud.state import control
from polycloud.state.connecting import lock, make_engine, mask_url, writer
from polycloud.state.migrating import check_schema, upgrade

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""
Fence = Callable[[], tuple[str, int] | None]
"""The (holder, epoch) of the leader lease this process holds now, or None when it holds none."""


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
        self._fence: Fence | None = None

    @classmethod
    def open(cls, url: str, *, clock: Clock | None = None, migrate: bool = True) -> Self:
        """Connect to the database at `url`, migrate it to the current schema and return a store.

        Safe to call from several processes at once on the same database.

        Args:
            url: `sqlite:////abs/path/state.db` (the folder is created) or
                `postgresql+psycopg://user@host:port/db` (a `?options=-csearch_path%3DSCHEMA` query selects
                a schema).
            clock: Source of "now" for timestamps and token expiry; the system UTC clock by default.
            migrate: Bring the schema to this polycloud's (else refuse a database at another schema:
                `polycloud server init` migrates it, once, for every server).

        Raises:
            UserError: The URL is invalid, the database unreachable, or its schema newer than this
                polycloud (or, without `migrate`, not exactly this polycloud's). The one-line message
                names the URL with any password masked.
        """
        engine = make_engine(url)
        label = mask_url(url)
        try:
            if migrate:
                upgrade(engine)
            else:
                check_schema(engine, label)
        except DBAPIError as e:
            engine.dispose()
            raise UserError(f"cannot open the state database {label}: {_first_line(e)}") from e
        return cls(engine, clock=clock or _utcnow)

    @classmethod
    def attach(cls, url: str, *, clock: Clock | None = None) -> Self:
        """A store on the database at `url` that neither connects nor migrates until first used.

        For processes that must start while the database is down and must never change its schema (a
        gateway): each call fails with `TransientError` until the database answers, and reads of a
        schema older than this polycloud fail the same way until `polycloud server init` migrates it.

        Raises:
            UserError: The URL is invalid.
        """
        return cls(make_engine(url), clock=clock or _utcnow)

    def fenced(self, fence: Fence) -> Self:
        """A view of this store (same connections) whose every write is fenced by the leader lease.

        Each write transaction first checks, under the lease row's shared lock, that `fence()` still
        names the lease's holder and epoch, and is refused with `FencedError` otherwise: a leader that
        was paused past its lease and wakes up writes nothing.
        """
        view = copy.copy(self)
        view._fence = fence
        return view

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
    def _session(
        self, *, write: bool, lock_name: str | None = None, unfenced: bool = False
    ) -> Iterator[Session]:
        try:
            with (self._writer if write else self._reader).begin() as session:
                if lock_name is not None:
                    lock(session.connection(), lock_name)
                if write and not unfenced and self._fence is not None:
                    self._check_fence(session, self._fence)
                yield session
        except IntegrityError as e:
            raise ConflictError(f"the state database refused the change: {_first_line(e)}") from e
        except OperationalError as e:
            raise TransientError(f"state database {self._label} unavailable: {_first_line(e)}") from e

    @staticmethod
    def _check_fence(session: Session, fence: Fence) -> None:
        held = fence()
        if held is None:
            raise FencedError("this server does not hold the leader lease")
        control.check_fence(session, control.LEADER, *held)

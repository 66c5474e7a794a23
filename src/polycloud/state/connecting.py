"""Engines for the state database: SQLite set up to be shared by several processes, or PostgreSQL.

SQLite gets WAL (readers never block the writer), a busy timeout (writers queue instead of failing),
foreign keys, and transactions begun by us rather than by the sqlite3 driver: reads `BEGIN`, writes
`BEGIN IMMEDIATE`, so a write transaction holds the write lock from its first statement and two writers
can never deadlock on a lock upgrade. On PostgreSQL, writers of the same kind of state serialise on a
transaction-scoped advisory lock (`lock`), which keeps revision numbering gap-free under concurrency.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry

from polycloud.errors import UserError

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's write transaction before giving up."""
CONNECT_TIMEOUT_S = 10
"""How long to wait for a PostgreSQL server that does not answer (unless the URL says otherwise)."""
WRITE_OPTION = "polycloud_write"
"""Execution option marking a connection whose transactions write (SQLite: BEGIN IMMEDIATE)."""

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@/]*@")


def mask_url(url: str) -> str:
    """`url` with any password replaced by `***`, safe to show in messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def parse_url(url: str) -> URL:
    """Parse a database URL, raising `UserError` for anything that is not a usable SQLAlchemy URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise UserError(
            f"invalid database URL {mask_url(url)!r}: expected e.g. sqlite:////abs/state.db"
        ) from e
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(
            f"unsupported database {mask_url(url)!r}: use sqlite:///PATH or postgresql+psycopg://..."
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise UserError(
            f"the state database needs a file, not {mask_url(url)!r}: use sqlite:////abs/state.db"
        )
    return parsed


def make_engine(url: str) -> Engine:
    """Create the engine for `url` (without connecting), creating a SQLite file's parent folder.

    Args:
        url: A SQLAlchemy URL: `sqlite:///PATH` or `postgresql+psycopg://USER[:PASSWORD]@HOST:PORT/DB`.

    Returns:
        An engine whose connections carry the settings described in the module docstring.

    Raises:
        UserError: The URL is malformed, names an unsupported database or an uncreatable folder.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as e:
        raise UserError(
            f"cannot use database URL {mask_url(url)!r} (try postgresql+psycopg://...): {e}"
        ) from e


def _sqlite_engine(url: URL) -> Engine:
    path = Path(url.database or "")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_database(path)
    except OSError as e:
        raise UserError(
            f"cannot create the database {mask_url(str(url))!r} or its folder: {e.strerror}"
        ) from e
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _private_database(path: Path) -> None:
    """Create the database file 0600 before SQLite would (0644 less the umask), and tighten one made
    looser by an older polycloud. SQLite gives its -wal and -shm files the database file's mode; those
    that exist already are tightened too. The file holds the audit trail, token hashes and secret
    ciphertexts."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))  # empty is a valid database
    for each in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        try:
            found = each.stat()
        except FileNotFoundError:
            continue
        if found.st_uid == os.getuid() and found.st_mode & 0o077:
            each.chmod(found.st_mode & 0o700)


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from the sqlite3 driver (which would skip it for SELECT and DDL); see _on_sqlite_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    write = bool(connection.get_execution_options().get(WRITE_OPTION, False))
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def writer(engine: Engine) -> Engine:
    """A view of `engine` whose transactions are write transactions (see the module docstring)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def lock(connection: Connection, name: str) -> None:
    """Serialise this transaction with every other holding lock `name`, until it ends.

    SQLite needs nothing: its write transactions are already serial. PostgreSQL takes a
    transaction-scoped advisory lock derived from `name`.
    """
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(f"polycloud:{name}".encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

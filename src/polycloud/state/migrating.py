"""Schema migrations, run from the package (no alembic.ini needed): `upgrade` brings a database to head.

The migration scripts live in `migrations/versions/`. `upgrade` runs them inside one write transaction
that first takes the "migrations" lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock and
transactional DDL), so processes that open the same database at once migrate it exactly once. Alembic's
version table is created unqualified, i.e. in the first schema of the connection's search path.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from polycloud.state.connecting import lock, writer

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CONNECTION_ATTRIBUTE = "connection"
"""Key under which `env.py` finds the connection to migrate in `Config.attributes`."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations, optionally bound to `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes[CONNECTION_ATTRIBUTE] = connection
    return config


def head_revision() -> str | None:
    """The newest migration this version of polycloud knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database behind `engine` to head; a no-op when it is there already.

    Args:
        engine: An engine from `polycloud.state.connecting.make_engine`.

    Raises:
        alembic.util.CommandError: The database is at a revision this version does not know (newer).
        sqlalchemy.exc.DBAPIError: The database is unreachable or refused a statement.
    """
    with writer(engine).begin() as connection:
        lock(connection, "migrations")
        command.upgrade(alembic_config(connection), "head")

"""Schema migrations, run from the package (no alembic.ini needed): `upgrade` brings a database to head.

The migration scripts live in `migrations/versions/`. `upgrade` runs them inside one write transaction
that first takes the "migrations" lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock and
transactional DDL), so processes that open the same database at once migrate it exactly once. Alembic's
version table is created unqualified, i.e. in the first schema of the connection's search path.

Import-time discipline: importing Alembic costs about half a second of CPU, and almost every open finds
the schema at `HEAD` already. So Alembic is imported only on the slow path, inside the functions that
need it; `HEAD` is kept in step with the scripts by a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from polycloud.errors import UserError
from polycloud.state.connecting import lock, writer

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0020"
"""The newest migration in `migrations/versions/`."""
VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CONNECTION_ATTRIBUTE = "connection"
"""Key under which `env.py` finds the connection to migrate in `Config.attributes`."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations, optionally bound to `connection`."""
    from alembic.config import Config  # slow import: see the module docstring

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes[CONNECTION_ATTRIBUTE] = connection
    return config


def head_revision() -> str | None:
    """The newest migration according to the scripts themselves (Alembic's view of `HEAD`)."""
    from alembic.script import ScriptDirectory  # slow import: see the module docstring

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The migration the database is at; None for a database never migrated."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    versions = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    return versions[0] if len(versions) == 1 else None


def upgrade(engine: Engine) -> None:
    """Migrate the database behind `engine` to head; a quick no-op when it is there already.

    Args:
        engine: An engine from `polycloud.state.connecting.make_engine`.

    Raises:
        UserError: The database is at a migration this version does not know (a newer polycloud's).
        sqlalchemy.exc.DBAPIError: The database is unreachable or refused a statement.
    """
    with engine.connect() as connection:
        if current_revision(connection) == HEAD:
            return
    from alembic import command  # slow import: see the module docstring
    from alembic.util import CommandError

    with writer(engine).begin() as connection:
        lock(connection, "migrations")
        try:
            command.upgrade(alembic_config(connection), "head")
        except CommandError as e:
            url = engine.url.render_as_string(hide_password=True)
            hint = "was it migrated by a newer polycloud?"
            raise UserError(
                f"the state database {url} has a schema unknown to this polycloud ({hint}): {e}"
            ) from e


def check_schema(engine: Engine, label: str) -> None:
    """Refuse a database whose schema is not this polycloud's, saying what to do.

    Raises:
        UserError: Never initialised, or migrated to another version.
        sqlalchemy.exc.DBAPIError: The database is unreachable.
    """
    with engine.connect() as connection:
        found = current_revision(connection)
    if found == HEAD:
        return
    if found is None:
        raise UserError(f"the state database {label} is not initialised: run `polycloud server init` once")
    raise UserError(
        f"the state database {label} is at schema {found}, this polycloud needs {HEAD}: "
        "run `polycloud server init` with the newer polycloud (older servers must stop first)"
    )

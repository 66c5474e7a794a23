"""Alembic environment for the state store; driven only by `polycloud.state.migrating.upgrade`.

That function passes an open connection, already inside a locked transaction, in the configuration's
attributes; the migrations join that transaction. Offline (`--sql`) mode is not supported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from polycloud.errors import PermanentError
from polycloud.state.migrating import CONNECTION_ATTRIBUTE
from polycloud.state.tables import Base


def run_migrations_online() -> None:
    """Run the pending migrations on the connection handed over by `migrating.upgrade`."""
    connection = context.config.attributes.get(CONNECTION_ATTRIBUTE)
    if not isinstance(connection, Connection):
        raise PermanentError("state migrations run through polycloud.state.migrating.upgrade only")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise PermanentError("offline (--sql) migrations are not supported for the polycloud state store")
run_migrations_online()

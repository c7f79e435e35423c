"""Alembic's environment for the registry: always run on a connection it is given.

``ratekeeper.registry._migrate.upgrade`` opens the connection (and, on
PostgreSQL, takes the advisory lock that lets one replica migrate while the
others wait) and hands it over as ``config.attributes["connection"]``. There
is no ``alembic.ini`` and no offline (SQL script) mode: the registry
migrates itself when it opens.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ratekeeper.registry._tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the registry's migrations run through ratekeeper.registry.Registry.open(url), "
        "which gives them a connection"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="ratekeeper_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

"""Bring a registry database to the newest schema: Alembic, run from the package.

The migrations ship inside the package (``migrations/``: Alembic's
environment and its ``versions``), so a registry is migrated by opening it,
with nothing to configure: :func:`upgrade` runs ``alembic upgrade head`` on a
connection of the registry's engine, in one transaction.

Several processes may open one database at the same moment (replicas
starting together; ``keys create`` while ``serve`` starts). They take turns:

- PostgreSQL: ``pg_advisory_xact_lock`` inside the migrating transaction. The
  first replica migrates; the others wait on the lock, then find the schema
  at head and change nothing. DDL is transactional there: a failed migration
  leaves nothing half made.
- SQLite: the transaction starts with ``BEGIN IMMEDIATE``, which takes the
  database's write lock before Alembic reads its version table; the others
  wait for it (the driver's busy timeout).
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

__all__ = ["MIGRATION_LOCK", "VERSION_TABLE", "current_revision", "head_revision", "upgrade"]

#: the advisory lock replicas take turns on while migrating (PostgreSQL): "ratekeep" in hex
MIGRATION_LOCK = 0x7261_7465_6B65_6570
#: Alembic's version table, named for ratekeeper: the database may hold an app's own
VERSION_TABLE = "ratekeeper_alembic_version"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("ratekeeper.registry") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration's revision: what :func:`upgrade` brings a database to."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database at ``connection`` is at (``None``: not made yet)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database of ``engine`` to head, taking turns with other processes."""
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine)
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(_config(connection), "head")


def _upgrade_sqlite(engine: Engine) -> None:
    """``upgrade`` on SQLite: the driver's own transaction handling off, ``BEGIN IMMEDIATE``."""
    with engine.connect() as plain:
        connection = plain.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            command.upgrade(_config(connection), "head")
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")

"""Registry URLs to SQLAlchemy engines: SQLite for one machine, PostgreSQL for several.

``sqlite:///path.sqlite3`` (relative to the working directory; ``sqlite:////abs``
for an absolute path), ``sqlite://`` in memory (one process: tests),
``postgresql://user:pass@host:5432/db`` (also ``postgres://``), which is run
by psycopg 3 (``postgresql+psycopg://``, what SQLAlchemy would otherwise
look for is psycopg2). Passwords never appear in errors (``shown``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from ._errors import RegistryError

__all__ = ["engine_for", "registry_url", "shown"]

#: seconds a SQLite writer waits for another's lock before giving up
_SQLITE_BUSY_TIMEOUT = 30.0
#: seconds to connect to PostgreSQL before giving up
_CONNECT_TIMEOUT = 10


def registry_url(url: str) -> URL:
    """``url`` as SQLAlchemy's URL, PostgreSQL given the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise RegistryError(
            f"not a registry URL: {url!r}; use sqlite:///path.sqlite3 or postgresql://..."
        ) from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise RegistryError(
        f"unsupported registry URL {shown(parsed)!r}: use sqlite:///path.sqlite3 or "
        "postgresql://user@host/db"
    )


def shown(url: URL | str) -> str:
    """A URL fit for messages: the password hidden."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def engine_for(url: str) -> Engine:
    """An engine for ``url``, its pool safe to share between threads (the watcher's)."""
    parsed = registry_url(url)
    options: dict[str, Any] = {}
    if parsed.drivername.startswith("sqlite"):
        connect_args: dict[str, Any] = {"check_same_thread": False}
        if parsed.database in (None, "", ":memory:"):
            options["poolclass"] = StaticPool  # one connection: the memory database itself
        else:
            connect_args["timeout"] = _SQLITE_BUSY_TIMEOUT
        options["connect_args"] = connect_args
    else:
        options["pool_pre_ping"] = True
        options["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT}
    return create_engine(parsed, **options)

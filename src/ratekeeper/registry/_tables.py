"""The registry's tables, as SQLAlchemy Core: what the queries are written against.

The schema itself is made and changed by the migrations (``migrations/versions``),
never by ``metadata.create_all``: these definitions must say what the newest
migration leaves, and ``tests/registry/test_migrations.py`` checks that they do.

``keys``             one row per API key: its SHA-256 (never the key), plan, overrides
``audit``            append-only: who changed what, when
``registry_state``   one row: ``revision``, bumped by every change of ``keys`` in the
                     same transaction, so a watcher asks one integer per interval
``usage_minute``     decisions counted per (minute, key id, category): what every replica
                     adds (``Registry.add_usage``)
``usage_hour``       the same per hour, and per UTC day in ``usage_day``: recomputed from the
``usage_day``        finer rows by ``Registry.roll_up`` (docs/analytics.md)
``usage_state``      one row: ``dirty_from``, the oldest minute added since the last roll-up
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "STATE_ROW",
    "USAGE_COUNTS",
    "UtcDateTime",
    "audit",
    "keys",
    "metadata",
    "registry_state",
    "usage_day",
    "usage_hour",
    "usage_minute",
    "usage_state",
]

#: the id of ``registry_state``'s one row
STATE_ROW = 1


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, always read back as an aware UTC ``datetime``.

    PostgreSQL keeps ``timestamptz``; SQLite keeps text without an offset, so
    times are written there in UTC and given ``tzinfo=UTC`` when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"expected an aware datetime, got {value!r}")
        moment: datetime = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()
_ROW_ID = BigInteger().with_variant(Integer, "sqlite")

keys = Table(
    "keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("plan", String(64), nullable=False),
    Column("user", String(200), nullable=True),
    # the key's own limits as given (plain JSON text: {"api": "100/minute"}), "{}" for none
    Column("limits", Text, nullable=False, default="{}"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    UniqueConstraint("sha256", name="uq_keys_sha256"),
)

audit = Table(
    "audit",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("kind", String(64), nullable=False, index=True),
    Column("target", String(200), nullable=True, index=True),
    Column("detail", Text, nullable=False, default="{}"),
)

registry_state = Table(
    "registry_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
)


#: the counts of a usage row, in the order of ``ratekeeper.registry.UsageRow``'s fields
USAGE_COUNTS = (
    "allowed",
    "refused_rate",
    "refused_cap",
    "refused_block",
    "refused_unknown_key",
    "refused_other",
    "cost",
)


def _usage_table(name: str) -> Table:
    """Counts per (bucket start, key id, category); ``start`` in epoch seconds (UTC).

    Whole seconds rather than a ``DateTime``: a bucket is ``start - start % 3600``
    on SQLite and PostgreSQL alike, so the roll-ups are one portable
    ``INSERT ... SELECT ... GROUP BY``.
    """
    return Table(
        name,
        metadata,
        Column("start", BigInteger, primary_key=True, autoincrement=False),
        Column("key_id", String(64), primary_key=True),
        Column("category", String(64), primary_key=True),
        *(Column(count, BigInteger, nullable=False, default=0) for count in USAGE_COUNTS),
    )


usage_minute = _usage_table("usage_minute")
usage_hour = _usage_table("usage_hour")
usage_day = _usage_table("usage_day")

usage_state = Table(
    "usage_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    # the start of the oldest minute added since the last roll-up (epoch seconds): the
    # roll-up recomputes the hours and days from there on
    Column("dirty_from", BigInteger, nullable=False),
)

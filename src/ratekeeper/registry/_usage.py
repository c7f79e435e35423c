"""Usage counts in the registry's database: added by every replica, rolled up, kept a while.

Each process counts its decisions in memory (``ratekeeper.analytics.UsageRecorder``)
and adds them here every second: :func:`add_usage` is an upsert that *adds*
(``INSERT ... ON CONFLICT DO UPDATE SET allowed = allowed + excluded.allowed``),
so replicas sharing one PostgreSQL database each add theirs, and one flush
is one transaction of one statement (plus the state row below).

The hour and day rows are not written by the flushes: :func:`roll_up`
recomputes them from the finer rows (hours from minutes, days from hours),
replacing what was there. That makes a roll-up idempotent: any replica may
run it, any number of times, in any order, and the totals stay the sums of
the minutes. To recompute only what changed, every flush lowers
``usage_state.dirty_from`` to the oldest minute it added; a roll-up starts
at that minute's hour (and day) and sets it back to "nothing" (``NOTHING``).
Both take the state row first (an ``UPDATE``: a row lock on PostgreSQL, the
write lock on SQLite), so a flush that commits during a roll-up is either
seen by it or lowers ``dirty_from`` for the next one.

Retention (:class:`Retention`, configurable): minute rows 48 hours, hour rows
35 days, day rows 13 months (396 days). An hour is recomputed only while all
its minutes are kept, a day only while all its hours are: a roll-up never
replaces a total with the part of it that is left.

Times are whole epoch seconds in the tables (a bucket is ``start - start %
3600`` on both databases) and aware UTC ``datetime`` values in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ._tables import USAGE_COUNTS, usage_day, usage_hour, usage_minute, usage_state

__all__ = [
    "ANONYMOUS",
    "MAX_POINTS",
    "NOTHING",
    "STEPS",
    "Retention",
    "UsagePoint",
    "UsageRow",
    "add_usage",
    "roll_up",
    "top_keys",
    "usage_series",
]

#: the key id of callers without a known key: counted together, never per address
ANONYMOUS = "anonymous"
#: ``usage_state.dirty_from`` when nothing was added since the last roll-up
NOTHING = 2**62
#: seconds per bucket of each step
STEPS = {"minute": 60, "hour": 3600, "day": 86400}
#: points one series holds at most (a week of minutes)
MAX_POINTS = 7 * 24 * 60
_STATE_ROW = 1
_TABLES = {"minute": usage_minute, "hour": usage_hour, "day": usage_day}
_REFUSALS = USAGE_COUNTS[1:6]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long rows are kept: minute rows 48 hours, hour rows 35 days, day rows 13 months."""

    minute: timedelta = timedelta(hours=48)
    hour: timedelta = timedelta(days=35)
    day: timedelta = timedelta(days=396)

    def __post_init__(self) -> None:
        if not timedelta(hours=2) <= self.minute <= self.hour <= self.day:
            raise ValueError(
                "retention must keep minutes at least 2 hours, hours at least as long as "
                f"minutes and days at least as long as hours: got {self}"
            )


class _Totals:
    """What a row of counts sums to (its fields are :data:`USAGE_COUNTS`)."""

    __slots__ = ()
    allowed: int
    refused_rate: int
    refused_cap: int
    refused_block: int
    refused_unknown_key: int
    refused_other: int

    @property
    def refused(self) -> int:
        """Every refusal, whatever its reason."""
        return (
            self.refused_rate + self.refused_cap + self.refused_block
            + self.refused_unknown_key + self.refused_other
        )  # fmt: skip

    @property
    def requests(self) -> int:
        """Every decision: allowed and refused."""
        return self.allowed + self.refused


@dataclass(frozen=True, slots=True)
class UsageRow(_Totals):
    """Decisions of one minute (``at``, its start, aware UTC) for one key and category.

    ``key_id`` is :data:`ANONYMOUS` for callers without a key; ``category``
    ``""`` for decisions made before a category was known (a malformed
    request). ``refused_other``: refused because the store was unavailable
    or the request was bad; ``cost``: the units the allowed requests consumed.
    """

    at: datetime
    key_id: str
    category: str
    allowed: int = 0
    refused_rate: int = 0
    refused_cap: int = 0
    refused_block: int = 0
    refused_unknown_key: int = 0
    refused_other: int = 0
    cost: int = 0


@dataclass(frozen=True, slots=True)
class UsagePoint(_Totals):
    """One bucket of a series (``at``: its start): the counts of the key and category
    asked for, ``None`` where the series sums over every key or category."""

    at: datetime
    key_id: str | None
    category: str | None
    allowed: int = 0
    refused_rate: int = 0
    refused_cap: int = 0
    refused_block: int = 0
    refused_unknown_key: int = 0
    refused_other: int = 0
    cost: int = 0

    def as_json(self) -> dict[str, Any]:
        """The point as JSON data: its start in ISO 8601, every count, the two sums."""
        data: dict[str, Any] = {"at": _iso(self.at)}
        data.update((name, getattr(self, name)) for name in USAGE_COUNTS)
        data.update(requests=self.requests, refused=self.refused)
        return data


assert tuple(field.name for field in fields(UsageRow))[3:] == USAGE_COUNTS


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {moment!r}")
    return int(moment.timestamp() // 1)


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _insert(connection: Connection, table: Table) -> Any:
    """``INSERT`` of the connection's dialect, which knows ``ON CONFLICT``."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# adding


def add_usage(engine: Engine, rows: Iterable[UsageRow]) -> int:
    """Add ``rows`` to the minute rows (each to its minute's start); how many rows were written.

    Rows of one (minute, key, category) are summed first; an empty flush
    writes nothing.
    """
    merged: dict[tuple[int, str, str], list[int]] = {}
    for row in rows:
        start = _seconds(row.at)
        start -= start % 60
        counts = merged.setdefault((start, row.key_id, row.category), [0] * len(USAGE_COUNTS))
        for index, name in enumerate(USAGE_COUNTS):
            counts[index] += getattr(row, name)
    if not merged:
        return 0
    values = [
        {"start": start, "key_id": key_id, "category": category}
        | dict(zip(USAGE_COUNTS, counts, strict=True))
        for (start, key_id, category), counts in merged.items()
    ]
    oldest = min(start for start, _, _ in merged)
    with engine.begin() as connection:
        statement = _insert(connection, usage_minute)
        statement = statement.on_conflict_do_update(
            index_elements=["start", "key_id", "category"],
            set_={name: usage_minute.c[name] + statement.excluded[name] for name in USAGE_COUNTS},
        )
        connection.execute(statement, values)
        # always touched, never skipped by a WHERE: a roll-up holding the row makes this wait
        dirty = usage_state.c.dirty_from
        lower = func.min if connection.dialect.name == "sqlite" else func.least
        connection.execute(
            update(usage_state)
            .where(usage_state.c.id == _STATE_ROW)
            .values(dirty_from=lower(dirty, oldest))
        )
    return len(values)


# rolling up


def roll_up(engine: Engine, now: datetime, retention: Retention) -> None:
    """Recompute the hour and day rows changed since the last roll-up; drop what is too old.

    Idempotent (see the module docstring): running it twice, or on two
    replicas at once, leaves the same rows.
    """
    now_s = _seconds(now)
    keep_minutes = now_s - int(retention.minute.total_seconds())
    keep_hours = now_s - int(retention.hour.total_seconds())
    keep_days = now_s - int(retention.day.total_seconds())
    with engine.begin() as connection:
        state = usage_state.c
        # the state row first: flushes committing meanwhile wait, then lower it again
        connection.execute(
            update(usage_state).where(state.id == _STATE_ROW).values(dirty_from=state.dirty_from)
        )
        dirty = connection.scalar(select(state.dirty_from).where(state.id == _STATE_ROW))
        dirty = NOTHING if dirty is None else int(dirty)
        if dirty < NOTHING:
            first_hour = max(_floor(dirty, 3600), _ceil(keep_minutes, 3600))
            _recompute(connection, usage_hour, usage_minute, 3600, first_hour)
            first_day = max(_floor(dirty, 86400), _ceil(keep_hours, 86400))
            _recompute(connection, usage_day, usage_hour, 86400, first_day)
            connection.execute(
                update(usage_state).where(state.id == _STATE_ROW).values(dirty_from=NOTHING)
            )
        for table, horizon in (
            (usage_minute, keep_minutes), (usage_hour, keep_hours), (usage_day, keep_days)
        ):  # fmt: skip
            connection.execute(delete(table).where(table.c.start < horizon))


def _floor(seconds: int, step: int) -> int:
    return seconds - seconds % step


def _ceil(seconds: int, step: int) -> int:
    return -(-seconds // step) * step


def _recompute(connection: Connection, target: Table, source: Table, step: int, first: int) -> None:
    """``target``'s rows from ``first`` on, as the sums of ``source``'s rows (replacing them)."""
    bucket = (source.c.start - source.c.start % step).label("start")
    query = (
        select(bucket, source.c.key_id, source.c.category,
               *(func.sum(source.c[name]).label(name) for name in USAGE_COUNTS))
        .where(source.c.start >= first)
        .group_by(bucket, source.c.key_id, source.c.category)
    )  # fmt: skip
    statement = _insert(connection, target).from_select(
        ["start", "key_id", "category", *USAGE_COUNTS], query
    )
    statement = statement.on_conflict_do_update(
        index_elements=["start", "key_id", "category"],
        set_={name: statement.excluded[name] for name in USAGE_COUNTS},
    )
    connection.execute(statement)


# reading


def usage_series(
    engine: Engine,
    *,
    key: str | None,
    category: str | None,
    start: datetime,
    end: datetime,
    step: str,
) -> list[UsagePoint]:
    """Every bucket of ``step`` from ``start`` (floored to its bucket) to before ``end``,
    with zeros where nothing was counted; summed over keys/categories not asked for.

    ``ValueError`` for an unknown step, ``end`` not after ``start``, or more
    than :data:`MAX_POINTS` buckets.
    """
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}, got {step!r}")
    size = STEPS[step]
    first, last = _floor(_seconds(start), size), _seconds(end)
    if last <= first:
        raise ValueError("the end of a series must be after its start")
    if (last - first) / size > MAX_POINTS:
        raise ValueError(
            f"that is over {MAX_POINTS} points of a {step}: "
            "ask for a shorter range or a longer step"
        )
    table = _TABLES[step]
    query = (
        select(table.c.start, *(func.sum(table.c[name]).label(name) for name in USAGE_COUNTS))
        .where(table.c.start >= first, table.c.start < last)
        .group_by(table.c.start)
    )
    if key is not None:
        query = query.where(table.c.key_id == key)
    if category is not None:
        query = query.where(table.c.category == category)
    with engine.connect() as connection:
        found = {
            int(row.start): [int(getattr(row, name) or 0) for name in USAGE_COUNTS]
            for row in connection.execute(query)
        }
    zeros = [0] * len(USAGE_COUNTS)
    return [
        UsagePoint(_moment(at), key, category, *found.get(at, zeros))
        for at in range(first, last, size)
    ]


def top_keys(
    engine: Engine,
    *,
    by: str,
    since: datetime,
    limit: int,
    now: datetime,
    retention: Retention,
) -> list[tuple[str, int]]:
    """Keys by their requests (or refusals) since ``since``, most first; none with zero.

    Read from the finest rows that still cover ``since`` (minutes for the
    last 48 hours by default, then hours, then days).
    """
    if by not in ("requests", "refusals"):
        raise ValueError(f"by must be requests or refusals, got {by!r}")
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be 1 to 1000, got {limit}")
    since_s, now_s = _seconds(since), _seconds(now)
    table = usage_day
    for finer, kept in ((usage_minute, retention.minute), (usage_hour, retention.hour)):
        if since_s >= now_s - kept.total_seconds():
            table = finer
            break
    names: Sequence[str] = _REFUSALS if by == "refusals" else (*_REFUSALS, "allowed")
    total = sum((table.c[name] for name in names[1:]), table.c[names[0]])
    summed = func.sum(total).label("total")
    query = (
        select(table.c.key_id, summed)
        .where(table.c.start >= _floor(since_s, 60))
        .group_by(table.c.key_id)
        .having(func.sum(total) > 0)
        .order_by(summed.desc(), table.c.key_id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [(row.key_id, int(row.total)) for row in connection.execute(query)]

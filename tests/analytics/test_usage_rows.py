"""Usage rows in the registry: flushes add, roll-ups recompute, retention drops; both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from ratekeeper.registry import Registry, Retention, UsageRow

#: a day boundary (UTC)
DAY = datetime(2025, 3, 10, tzinfo=UTC)


def row(at: datetime, key: str = "acme", category: str = "api", **counts: int) -> UsageRow:
    return UsageRow(at=at, key_id=key, category=category, **counts)


def minutes(
    registry: Registry, start: datetime, end: datetime, **filters: str
) -> list[tuple[int, int, int]]:
    points = registry.usage_series(start=start, end=end, step="minute", **filters)
    return [(point.allowed, point.refused, point.cost) for point in points]


def test_flushes_add_their_counts_to_the_minute_rows(registry: Registry) -> None:
    at = DAY + timedelta(minutes=5, seconds=42)  # counted in its minute, 00:05
    registry.add_usage([row(at, allowed=3, cost=5), row(at, refused_rate=2)])
    registry.add_usage([row(at, allowed=1, cost=1, refused_cap=1)])  # another replica's flush
    registry.add_usage([])  # nothing: nothing written
    (point,) = registry.usage_series(
        key="acme", category="api", start=DAY + timedelta(minutes=5), end=DAY + timedelta(minutes=6)
    )
    assert point.at == DAY + timedelta(minutes=5)
    assert (point.allowed, point.refused_rate, point.refused_cap, point.cost) == (4, 2, 1, 6)
    assert (point.requests, point.refused) == (7, 3)


def test_a_series_has_every_bucket_and_sums_over_what_is_not_asked_for(registry: Registry) -> None:
    registry.add_usage([
        row(DAY + timedelta(minutes=1), "acme", "api", allowed=2),
        row(DAY + timedelta(minutes=1), "acme", "login", refused_block=1),
        row(DAY + timedelta(minutes=3), "beta", "api", allowed=5, refused_unknown_key=1),
    ])  # fmt: skip
    end = DAY + timedelta(minutes=4)
    assert minutes(registry, DAY, end) == [(0, 0, 0), (2, 1, 0), (0, 0, 0), (5, 1, 0)]
    assert minutes(registry, DAY, end, key="acme") == [(0, 0, 0), (2, 1, 0), (0, 0, 0), (0, 0, 0)]
    assert minutes(registry, DAY, end, category="api") == [
        (0, 0, 0),
        (2, 0, 0),
        (0, 0, 0),
        (5, 1, 0),
    ]
    with pytest.raises(ValueError, match="step must be one of minute, hour, day"):
        registry.usage_series(start=DAY, end=end, step="week")
    with pytest.raises(ValueError, match="after its start"):
        registry.usage_series(start=end, end=DAY)
    with pytest.raises(ValueError, match="over 10080 points"):
        registry.usage_series(start=DAY, end=DAY + timedelta(days=8))


def test_a_roll_up_makes_hours_and_days_the_sums_of_the_minutes_however_often_it_runs(
    registry: Registry,
) -> None:
    now = DAY + timedelta(hours=3)
    registry.add_usage([
        row(DAY + timedelta(minutes=10), allowed=4, cost=4),
        row(DAY + timedelta(minutes=59), refused_rate=3),
        row(DAY + timedelta(hours=2, minutes=1), allowed=1, cost=2),
        row(DAY + timedelta(hours=2, minutes=2), key="beta", allowed=7, cost=7),
    ])  # fmt: skip
    for _ in range(3):  # idempotent
        registry.roll_up(now)
    hours = registry.usage_series(start=DAY, end=now, step="hour")
    assert [(p.allowed, p.refused, p.cost) for p in hours] == [(4, 3, 4), (0, 0, 0), (8, 0, 9)]
    (day,) = registry.usage_series(start=DAY, end=DAY + timedelta(days=1), step="day")
    assert (day.allowed, day.refused, day.cost) == (12, 3, 13)
    # counts added after a roll-up (a late flush of an earlier hour) are in the next one
    registry.add_usage([row(DAY + timedelta(minutes=30), allowed=10, cost=10)])
    registry.roll_up(now + timedelta(minutes=1))
    (first_hour,) = registry.usage_series(start=DAY, end=DAY + timedelta(hours=1), step="hour")
    assert (first_hour.allowed, first_hour.cost) == (14, 14)
    (day,) = registry.usage_series(start=DAY, end=DAY + timedelta(days=1), step="day", key="acme")
    assert (day.allowed, day.refused) == (15, 3)


def test_replicas_adding_and_rolling_up_at_once_lose_nothing(registry: Registry) -> None:
    at = DAY + timedelta(minutes=7)

    def replica(index: int) -> None:
        for _ in range(10):
            registry.add_usage(
                [row(at, allowed=1, cost=1), row(at, key=f"k{index}", refused_cap=1)]
            )
            registry.roll_up(DAY + timedelta(minutes=30))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(replica, range(4)))
    registry.roll_up(DAY + timedelta(minutes=30))
    (hour,) = registry.usage_series(start=DAY, end=DAY + timedelta(hours=1), step="hour")
    assert (hour.allowed, hour.refused_cap, hour.cost) == (40, 40, 40)
    (minute,) = registry.usage_series(start=at, end=at + timedelta(minutes=1), key="acme")
    assert minute.allowed == 40


def test_retention_drops_old_rows_and_never_shrinks_a_total_it_can_no_longer_recompute(
    database_url: str,
) -> None:
    retention = Retention(minute=timedelta(hours=2), hour=timedelta(days=2), day=timedelta(days=3))
    registry = Registry.open(database_url, retention=retention)
    try:
        registry.add_usage([row(DAY + timedelta(minutes=1), allowed=5)])
        registry.roll_up(DAY + timedelta(minutes=2))
        # a late flush for that same hour, after its minutes are gone
        later = DAY + timedelta(hours=5)
        registry.add_usage([row(DAY + timedelta(minutes=2), allowed=1)])
        registry.roll_up(later)
        assert minutes(registry, DAY, DAY + timedelta(minutes=3)) == [(0, 0, 0)] * 3
        (hour,) = registry.usage_series(start=DAY, end=DAY + timedelta(hours=1), step="hour")
        assert hour.allowed == 5  # kept as it was: not replaced by the one late minute
        registry.roll_up(DAY + timedelta(days=2, hours=1))
        assert (
            registry.usage_series(start=DAY, end=DAY + timedelta(hours=1), step="hour")[0].allowed
            == 0
        )
        (day,) = registry.usage_series(start=DAY, end=DAY + timedelta(days=1), step="day")
        assert day.allowed == 5
        registry.roll_up(DAY + timedelta(days=4))
        assert (
            registry.usage_series(start=DAY, end=DAY + timedelta(days=1), step="day")[0].allowed
            == 0
        )
    finally:
        registry.close()
    with pytest.raises(ValueError, match="retention must keep"):
        Retention(minute=timedelta(hours=1))


def test_top_keys_by_requests_and_by_refusals(registry: Registry) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    registry.add_usage([
        row(now, "acme", allowed=5, refused_rate=1),
        row(now, "beta", allowed=1, refused_block=4),
        row(now, "anonymous", refused_unknown_key=2),
        row(now - timedelta(hours=3), "gamma", allowed=100),
    ])  # fmt: skip
    since = now - timedelta(hours=1)
    assert registry.top_keys(since=since) == [("acme", 6), ("beta", 5), ("anonymous", 2)]
    assert registry.top_keys(by="refusals", since=since, limit=2) == [("beta", 4), ("anonymous", 2)]
    assert registry.top_keys(since=now - timedelta(hours=4), limit=1) == [("gamma", 100)]
    with pytest.raises(ValueError, match="by must be requests or refusals"):
        registry.top_keys(by="cost", since=since)

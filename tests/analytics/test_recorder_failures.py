"""A flush the database refuses in part keeps what it could not write: counts and audit rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from ratekeeper.analytics import UsageRecorder
from ratekeeper.engine import DecisionEvent
from ratekeeper.registry import Registry

T0 = 1_741_564_800  # 2025-03-10T00:00:00Z


def admitted(key: str) -> DecisionEvent:
    return DecisionEvent(
        T0 * 1_000_000_000, "admitted", True, 200, "api", "free", key, None, 1, 0.0
    )


def test_audit_rows_wait_for_the_next_flush_when_the_counts_cannot_be_written(
    tmp_path: Path,
) -> None:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    recorder = UsageRecorder(registry, roll_up_every=None, clock=lambda: float(T0))
    recorder(admitted("acme"))
    recorder.store_watcher(True, "connection refused")
    with registry.engine.begin() as connection:  # the usage table gone: the counts' write fails
        connection.execute(text("ALTER TABLE usage_minute RENAME TO usage_minute_away"))

    assert recorder.flush() is False
    assert [event.kind for event in registry.audit()] == ["store.failure"]  # written meanwhile

    with registry.engine.begin() as connection:
        connection.execute(text("ALTER TABLE usage_minute_away RENAME TO usage_minute"))
    assert recorder.flush() is True
    assert [event.kind for event in registry.audit()] == ["store.failure"]  # once, not twice
    start = datetime.fromtimestamp(T0, UTC)
    points = registry.usage_series(
        key="acme", start=start, end=start + timedelta(minutes=1), step="minute"
    )
    assert sum(point.allowed for point in points) == 1  # the kept count, written once
    registry.close()

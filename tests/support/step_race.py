"""Worker processes racing steps (``RedisStore.decide``) through one Redis, for atomicity tests.

Every worker decides ``steps`` steps of :func:`race_step` in a row, all of
them starting together. An admitted step counts itself as a holder in Redis
(``INCR``) while it holds its slot, a few milliseconds, then leaves (``DECR``)
and gives the slot back (``leases.release``), so the largest count an
``INCR`` returned is the most holders there ever were at once. One worker
may block the caller after a few steps of its own, while the others race on.
Each worker reports the most holders it saw, every step's ``(outcome,
now_ns)`` and, for the blocker, when the block ends.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from ratekeeper.algorithms import ALGORITHMS
from ratekeeper.rates import NS_PER_MS, Rate
from ratekeeper.stores import LimitSpec, LockoutRule, RedisStore, Step

__all__ = ["BAN", "BLOCK_RULE", "CAP", "HOLDERS_KEY", "LIMIT", "race", "race_into", "race_step"]

#: where the workers count holders
HOLDERS_KEY = "race:holders"
#: the caller's block, which the blocker sets while the others race
BAN = "ban:{racer}"
BLOCK_RULE = LockoutRule(threshold=1, window=60.0, block=60.0)
CAP = "cap:{racer}"
LIMIT = 5
_WEEK_NS = 7 * 86_400_000 * NS_PER_MS


def race_step(units: int) -> Step:
    """The caller's block, a cap of :data:`LIMIT`, and a rate of ``units`` a week."""
    rate = LimitSpec.of(ALGORITHMS["sliding_window"], Rate(units, _WEEK_NS))
    return Step(
        charges=[(rate, "api:{racer}", 1, False)],
        blocks=(BAN,),
        leases=((CAP, LIMIT, 60_000 * NS_PER_MS),),
    )


def race(
    url: str, steps: int, start: Any, units: int, block_after: int | None, hold: float = 0.005
) -> tuple[int, list[tuple[int, int]], int | None]:
    """Decide ``steps`` steps once ``start`` (a Barrier) lets every worker go.

    With ``block_after``, block the caller (:data:`BAN`) after that many steps.
    Returns the most holders seen at once, ``(outcome, now_ns)`` per step, and
    when the block ends (ns), if this worker set it.
    """
    step = race_step(units)
    store = RedisStore.from_url(url, on_error="closed", timeout=5.0)
    client = redis.Redis.from_url(url)
    most = 0
    seen = []
    until = None
    start.wait()
    for index in range(steps):
        if index == block_after:
            until = store.lockouts.record_failure(BAN, BLOCK_RULE).until_ns
        result = store.decide(step)
        seen.append((result.outcome, result.now_ns))
        if result.admitted:
            most = max(most, client.incr(HOLDERS_KEY))
            time.sleep(hold)
            client.decr(HOLDERS_KEY)
            for key, lease_id in result.leases:
                store.leases.release(key, lease_id)
    store.close()
    client.close()
    return most, seen, until


def race_into(
    queue: Any, url: str, steps: int, start: Any, units: int, block_after: int | None
) -> None:
    """:func:`race`, its answer put on ``queue`` (a worker process's target)."""
    queue.put(race(url, steps, start, units, block_after))

"""Sliding log: one timestamp per admitted unit; exact.

No span of ``window`` length ever admits more than ``limit`` units. A unit
admitted at ``t`` counts until ``t + window``. Expired timestamps are skipped
from the front as time passes and the list is compacted once the skipped part
is larger than the live part, so a decision costs the same at 100/minute and
at 100,000/day (amortised O(1); a denied request looks up one timestamp by
index to say when it could pass). Memory grows with the limit: use it for small
limits (logins, uploads) and ``sliding_window`` for large ones.

State: a list ``[head, t1, t2, ...]`` of admission times, oldest first, where
``head`` is the index of the oldest live one; changed in place. A plain list
costs a fraction of a ``deque`` (which allocates a 64-slot block up front) for
the small logs most keys have.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from .base import Evaluation

__all__ = ["SlidingLog"]

_COMPACT_AFTER = 32  # expired entries tolerated before the list is compacted


class SlidingLog:
    name = "sliding_log"
    in_place = True
    state_depends_on_limit = False
    #: one timestamp per unit: 10**5 of them is ~4.4 MB per key in memory and
    #: ~1 MB in Redis, already more than a log should hold (use sliding_window)
    max_limit = 10**5

    def evaluate(
        self, state: Any, now: int, cost: int, limit: int, window: int, capacity: int
    ) -> Evaluation:
        count = head = 0
        if state is not None:
            horizon = now - window
            head = state[0]
            size = len(state)
            while head < size and state[head] <= horizon:  # expired: invisible to every answer
                head += 1
            if head != state[0]:
                if head > _COMPACT_AFTER and 2 * head > size:
                    del state[1:head]
                    head = 1
                state[0] = head
            count = len(state) - head
        room = limit - count if count < limit else 0
        if cost <= room:
            if cost:
                reset = now + window
            else:
                reset = state[-1] + window if count else now
            return True, room, reset, 0, state
        if cost > limit:
            retry = window
        else:
            # the (count + cost - limit)-th oldest live unit must leave the window
            retry = state[head + count + cost - limit - 1] + window - now
        return False, room, now + retry, retry, state

    def consume(self, state: Any, now: int, cost: int) -> Any:
        log: list[int] = [1] if state is None else state
        if cost == 1:
            log.append(now)
        else:
            log.extend(repeat(now, cost))
        return log

    def expires_at(self, state: Any, limit: int, window: int) -> int:
        return int(state[-1] + window) if len(state) > state[0] else 0

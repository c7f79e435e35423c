"""Sliding log: one timestamp per admitted unit; exact.

No span of ``window`` length ever admits more than ``limit`` units. A unit
admitted at ``t`` counts until ``t + window``. Expired timestamps are dropped
from the front as time passes, so a decision costs the same at 100/minute and
at 100,000/day (amortised O(1); a denied request looks up one timestamp by
index to say when it could pass). Memory grows with the limit: use it for small
limits (logins, uploads) and ``sliding_window`` for large ones.

State: a ``deque`` of admission times, oldest first, changed in place.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import Any

from .base import Evaluation

__all__ = ["SlidingLog"]


class SlidingLog:
    name = "sliding_log"
    in_place = True
    state_depends_on_limit = False

    def evaluate(
        self, state: Any, now: int, cost: int, limit: int, window: int, capacity: int
    ) -> Evaluation:
        count = 0
        if state:
            horizon = now - window
            popleft = state.popleft
            while state and state[0] <= horizon:  # expired: invisible to every answer
                popleft()
            count = len(state)
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
            # the (count + cost - limit)-th oldest unit must leave the window
            retry = state[count + cost - limit - 1] + window - now
        return False, room, now + retry, retry, state

    def consume(self, state: Any, now: int, cost: int) -> Any:
        log: deque[int] = deque() if state is None else state
        if cost == 1:
            log.append(now)
        else:
            log.extend(repeat(now, cost))
        return log

    def expires_at(self, state: Any, limit: int, window: int) -> int:
        return int(state[-1] + window) if state else 0

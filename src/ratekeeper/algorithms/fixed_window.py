"""Fixed window: one counter per clock-aligned window.

Exact within each aligned window; a burst at the end of one window and the start
of the next can pass ``2 * limit`` in any span of one window length. Cheapest,
and what some providers document ("resets at the top of the minute").

State: ``(window_end, count)``: the common case (same window as the last
request) needs no division.
"""

from __future__ import annotations

from typing import Any

from .base import Evaluation

__all__ = ["FixedWindow"]


class FixedWindow:
    name = "fixed_window"
    in_place = False
    state_depends_on_limit = False
    #: counts only add and compare: any count below 2**53 is exact in Redis; the
    #: same bound as the other counters keeps the documented table short
    max_limit = 10**12

    def evaluate(
        self, state: Any, now: int, cost: int, limit: int, window: int, capacity: int
    ) -> Evaluation:
        if state is not None and state[0] - window <= now < state[0]:
            end, count = state
        else:
            end = (now // window + 1) * window
            count = 0
        room = limit - count if count < limit else 0
        if cost <= room:
            count += cost
            return True, room, end if count else now, 0, (end, count)
        retry = end - now if cost <= limit else window
        return False, room, now + retry, retry, state

    def consume(self, state: Any, now: int, cost: int) -> Any:
        raise NotImplementedError("fixed_window builds a new state in evaluate")

    def expires_at(self, state: Any, limit: int, window: int) -> int:
        return int(state[0])

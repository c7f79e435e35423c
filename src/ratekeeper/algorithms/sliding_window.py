"""Sliding window counter: the weighted two-window estimate (Cloudflare's method).

The count over the last ``window`` is estimated as::

    previous_window_count * (time left in the current window / window)
      + current_window_count

which assumes the previous window's requests were spread evenly. It needs two
counters per key, whatever the limit. The estimate is exact when traffic is
even and errs when it is bursty: an adversary who fills the quota just before
a window boundary can pass close to ``2 * limit`` (never that many) in one
span of ``window`` length; docs/algorithms.md gives the measured worst case.

All arithmetic is scaled by ``window`` so it stays in integers: no rounding.

State: ``(window_index, previous_count, current_count)``.
"""

from __future__ import annotations

from typing import Any

from .base import Evaluation

__all__ = ["SlidingWindow"]


class SlidingWindow:
    name = "sliding_window"
    in_place = False
    state_depends_on_limit = False

    def evaluate(
        self, state: Any, now: int, cost: int, limit: int, window: int, capacity: int
    ) -> Evaluation:
        index = now // window
        left = (index + 1) * window - now  # time until the current window ends
        previous = current = 0
        if state is not None:
            state_index = state[0]
            if state_index == index:
                previous = state[1]
                current = state[2]
            elif state_index == index - 1:
                previous = state[2]
        free = limit * window - previous * left - current * window  # scaled by window
        room = free // window if free > 0 else 0
        if cost * window <= free:
            current += cost
            if current:
                reset = (index + 2) * window
            else:
                reset = (index + 1) * window if previous else now
            return True, room, reset, 0, (index, previous, current)
        if cost > limit:
            retry = window
        elif current + cost <= limit:
            # room comes back within this window as the previous window's weight falls
            retry = left - (limit - current - cost) * window // previous
        else:
            # this window's own count must start to fall: wait into the next one
            retry = left + window - (limit - cost) * window // current
        return False, room, now + retry, retry, state

    def consume(self, state: Any, now: int, cost: int) -> Any:
        raise NotImplementedError("sliding_window builds a new state in evaluate")

    def expires_at(self, state: Any, limit: int, window: int) -> int:
        return int((state[0] + 2) * window)

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
The state keeps the current window's end, so the common case (same window as
the last request) needs no division.

State: ``(window_end, previous_count, current_count)``.
"""

from __future__ import annotations

from typing import Any

from .base import Evaluation

__all__ = ["SlidingWindow"]


class SlidingWindow:
    name = "sliding_window"
    in_place = False
    state_depends_on_limit = False
    #: the weighted product (previous x time left) exceeds 2**53 past ~10**8 per
    #: day; Redis computes it exactly in parts as long as the counts it divides
    #: by stay below 2**40 (docs/algorithms.md, "Bounds")
    max_limit = 10**12

    def evaluate(
        self, state: Any, now: int, cost: int, limit: int, window: int, capacity: int
    ) -> Evaluation:
        if state is not None and 0 < (left := state[0] - now) <= window:  # the state's window
            end, previous, current = state
        else:
            end = (now // window + 1) * window
            previous = state[2] if state is not None and state[0] == end - window else 0
            current = 0
            left = end - now
        spare = limit - current - cost
        if spare >= 0:
            if not previous:
                current += cost
                reset = end + window if current else now
                return True, limit - current + cost, reset, 0, (end, 0, current)
            weighted = previous * left  # the previous window's share, scaled by window
            if weighted <= spare * window:
                current += cost
                reset = end + window if current else end
                room = limit - current + cost + (-weighted // window)  # floor of what is left
                return True, room, reset, 0, (end, previous, current)
        free = limit * window - previous * left - current * window
        room = free // window if free > 0 else 0
        if cost > limit:
            retry = window
        elif spare >= 0:
            # room comes back within this window as the previous window's weight falls
            retry = left - spare * window // previous
        else:
            # this window's own count must start to fall: wait into the next one
            retry = left + window - (limit - cost) * window // current
        return False, room, now + retry, retry, state

    def consume(self, state: Any, now: int, cost: int) -> Any:
        raise NotImplementedError("sliding_window builds a new state in evaluate")

    def expires_at(self, state: Any, limit: int, window: int) -> int:
        return int(state[0] + window)

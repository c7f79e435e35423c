"""Token bucket as GCRA (the generic cell rate algorithm).

A bucket of ``capacity`` units (``burst``, default ``limit``) refills at
``limit`` units per ``window``. GCRA keeps one number, the theoretical arrival
time (TAT): the instant the bucket would be full again. A request of ``cost``
passes when ``max(TAT, now) + cost * interval - capacity * interval <= now``.

The interval ``window / limit`` is rarely a whole number of nanoseconds, so the
TAT is kept scaled by ``limit`` (nanoseconds x limit): every step is an exact
integer and "5/second" admits exactly 5 at once, then one each 200 ms.

State: the scaled TAT. It depends on the limit, so a key whose limit changes
starts a fresh bucket.
"""

from __future__ import annotations

from typing import Any

from .base import Evaluation

__all__ = ["TokenBucket"]


class TokenBucket:
    name = "token_bucket"
    in_place = False
    state_depends_on_limit = True
    #: the TAT scaled by the limit exceeds 2**53 past ~10**8 per day; Redis
    #: computes it exactly in parts as long as the limit it divides by stays
    #: below 2**40 (docs/algorithms.md, "Bounds")
    max_limit = 10**12

    def evaluate(
        self, state: Any, now: int, cost: int, limit: int, window: int, capacity: int
    ) -> Evaluation:
        now_scaled = now * limit
        tat = state if state is not None and state > now_scaled else now_scaled
        span = capacity * window
        free = span - (tat - now_scaled)
        room = free // window if free > 0 else 0
        new_tat = tat + cost * window
        if new_tat - now_scaled <= span:
            reset = -(-new_tat // limit)  # ceiling: the bucket is full at or after this
            return True, room, reset, 0, new_tat
        retry = -(-(new_tat - span - now_scaled) // limit) if cost <= capacity else window
        return False, room, now + retry, retry, state

    def consume(self, state: Any, now: int, cost: int) -> Any:
        raise NotImplementedError("token_bucket builds a new state in evaluate")

    def expires_at(self, state: Any, limit: int, window: int) -> int:
        return int(-(-state // limit))

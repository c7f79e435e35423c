"""What every algorithm offers the stores: one pure evaluation step.

An algorithm never reads a clock and never does I/O. ``evaluate`` takes the
key's state (``None`` when the key has none), the time ``now`` and the request's
``cost`` and answers, without changing anything::

    (allowed, room, reset_at, retry_after, next_state)

- ``room``: units the rate has left *before* this request (never negative);
- ``reset_at``: when allowed, the instant the rate has its whole quota back
  after this request; when denied, ``now + retry_after``;
- ``retry_after``: 0 when allowed, else how long until this request could pass
  if nothing else happens (a request larger than the limit can never pass: it
  is told to wait one window);
- ``next_state``: the state to store if the request is admitted.

Times are integer nanoseconds since the epoch, so results are exact. Algorithms
whose state is a growing log (``in_place = True``) do not build a new state:
the store calls ``consume`` once the whole decision is known to be admitted.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Algorithm", "Evaluation"]

Evaluation = tuple[bool, int, int, int, Any]


class Algorithm(Protocol):
    """A rate limiting algorithm as a pure transition."""

    name: str
    in_place: bool
    #: whether the state depends on the limit (so a new limit needs fresh state)
    state_depends_on_limit: bool
    #: the largest limit, burst and cost counted exactly on every store (bounds.py)
    max_limit: int

    def evaluate(
        self, state: Any, now: int, cost: int, limit: int, window: int, capacity: int
    ) -> Evaluation: ...

    def consume(self, state: Any, now: int, cost: int) -> Any:
        """Record an admitted request in place (only for ``in_place`` algorithms)."""
        ...

    def expires_at(self, state: Any, limit: int, window: int) -> int:
        """The instant after which the state says nothing: the key can be forgotten."""
        ...

"""How large a rate each algorithm counts exactly, whatever the store.

The memory store computes with Python integers and could count anything, but
the Redis scripts compute with Lua numbers, which are doubles: whole numbers
are exact only below 2**53 (about 9.007e15). A rate past what the scripts can
hold would not fail loudly there: it would round (a token bucket answering
``remaining: -1``), overflow (``X-RateLimit-Remaining: -9223372036854775808``)
or make every call a script error (so fail-open admits everything). So the
bounds are checked where a rate enters: :class:`~ratekeeper.stores.LimitSpec`
(every ``RateLimiter`` rate, string or :class:`~ratekeeper.rates.Rate`), the
policy loader (with file, line and field) and the cost of each hit. Past a
bound is a ``ValueError`` on every store, so a policy that loads against
memory in a test loads against Redis in production.

The bounds (docs/algorithms.md, "Bounds", gives the arithmetic behind each):

- every window is at most 365 days, so no state outlives a year and every
  instant and TTL stays far below 2**53 in the units the scripts use
  (milliseconds; microseconds for the sliding log);
- ``limit``, ``burst`` and ``cost`` are at most ``algorithm.max_limit``:
  10**12 for ``fixed_window``, ``sliding_window`` and ``token_bucket`` (the
  scripts' exact products divide by a limit or a window, both below 2**40), and
  10**5 for ``sliding_log``, which keeps one timestamp per unit (memory);
- a token bucket refills within 365 days (``burst x window / limit``), the
  longest its theoretical arrival time runs ahead of now (the other
  algorithms ignore ``burst``).
"""

from __future__ import annotations

from ..rates import NS_PER_SECOND, Rate
from .base import Algorithm

__all__ = ["MAX_WINDOW_NS", "check_cost", "check_rate"]

_NS_PER_DAY = 86_400 * NS_PER_SECOND
#: the longest window any algorithm counts: 365 days
MAX_WINDOW_NS = 365 * _NS_PER_DAY


def check_rate(algorithm: Algorithm, limit: int, window_ns: int, capacity: int) -> None:
    """``ValueError`` naming the field (limit, window, burst) past ``algorithm``'s bounds."""
    most = algorithm.max_limit
    if limit > most:
        raise ValueError(
            f"{_rate(limit, window_ns, capacity)}: limit {limit:,} is above {most:,}, "
            f"the most {algorithm.name} counts exactly (docs/algorithms.md, 'Bounds')"
        )
    if window_ns > MAX_WINDOW_NS:
        raise ValueError(
            f"{_rate(limit, window_ns, capacity)}: window of {_span(window_ns)} is longer "
            "than 365 days, the longest any algorithm counts (docs/algorithms.md, 'Bounds')"
        )
    if capacity == limit:
        return
    if capacity > most:
        raise ValueError(
            f"{_rate(limit, window_ns, capacity)}: burst {capacity:,} is above {most:,}, "
            f"the most {algorithm.name} counts exactly (docs/algorithms.md, 'Bounds')"
        )
    if algorithm.name == "token_bucket" and capacity * window_ns > MAX_WINDOW_NS * limit:
        days = capacity * window_ns / limit / _NS_PER_DAY
        raise ValueError(
            f"{_rate(limit, window_ns, capacity)}: burst {capacity:,} takes {days:,.9g} days "
            "to refill; a token bucket must refill within 365 days (docs/algorithms.md, 'Bounds')"
        )


def check_cost(algorithm: Algorithm, cost: int) -> None:
    """``ValueError`` when ``cost`` is past what ``algorithm`` counts exactly.

    A cost above the limit but within the bound is no error: it is refused
    and told to wait a window, as the cost may come from the request.
    """
    if cost > algorithm.max_limit:
        raise ValueError(
            f"cost {cost:,} is above {algorithm.max_limit:,}, the most {algorithm.name} "
            "counts exactly (docs/algorithms.md, 'Bounds')"
        )


def _rate(limit: int, window_ns: int, capacity: int) -> str:
    return f"rate {Rate(limit, window_ns, None if capacity == limit else capacity)}"


def _span(ns: int) -> str:
    """A window exactly: in days, else seconds, else nanoseconds."""
    if ns % _NS_PER_DAY == 0:
        return f"{ns // _NS_PER_DAY:,} days"
    if ns % NS_PER_SECOND == 0:
        return f"{ns // NS_PER_SECOND:,} s"
    return f"{ns:,} ns"

"""Rate strings such as ``"60/minute;1000/hour"`` turned into :class:`Rate` values.

A rate is a limit (how many units) over a window (how long). Windows are kept as
integer nanoseconds so that every algorithm computes with exact integers: at
1.7e9 seconds since the epoch a float has ~0.2 microsecond resolution, enough to
make a GCRA admit 4 of "5/second" when it should admit 5.

Accepted forms, joined with ``;``::

    10/second  60/minute  1000/hour  50000/day     N per unit
    5000/week  100000/month  1000000/year           (a month is 30 days, a year 365,
                                                     as Envoy's rate limit service counts)
    100 per 15 minutes   100/15m   5/30s            N per count units
    unlimited                                        no limit at all
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

__all__ = ["NS_PER_MS", "NS_PER_SECOND", "NS_PER_US", "Rate", "parse_rates"]

#: the units of time in the stores and algorithms, defined once: time is integer ns
NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_US = 1_000

_UNIT_SECONDS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
    "month": 2592000, "months": 2592000,
    "y": 31536000, "yr": 31536000, "year": 31536000, "years": 31536000,
}  # fmt: skip

_RATE_RE = re.compile(
    r"""^\s*(?P<limit>\d+)\s*(?:/|\bper\b)\s*(?P<count>\d+)?\s*(?P<unit>[a-z]+)\s*$""",
    re.IGNORECASE,
)

_UNIT_NAMES = {
    1: "second", 60: "minute", 3600: "hour", 86400: "day", 604800: "week", 2592000: "month",
    31536000: "year",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units per ``window_ns`` nanoseconds.

    ``burst`` is the token bucket's capacity (how many units may pass at once);
    ``None`` means "the same as limit". The other algorithms ignore it.
    """

    limit: int
    window_ns: int
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"rate limit must be at least 1, got {self.limit}")
        if self.window_ns < 1:
            raise ValueError(f"rate window must be positive, got {self.window_ns} ns")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"rate burst must be at least 1, got {self.burst}")

    @property
    def window(self) -> float:
        """The window in seconds."""
        return self.window_ns / NS_PER_SECOND

    @property
    def capacity(self) -> int:
        """Units that may pass at once (token bucket); ``limit`` unless ``burst`` is set."""
        return self.limit if self.burst is None else self.burst

    def __str__(self) -> str:
        seconds, rest = divmod(self.window_ns, NS_PER_SECOND)
        if rest:
            text = f"{self.limit}/{self.window_ns / NS_PER_SECOND:g}s"
        elif seconds in _UNIT_NAMES:
            text = f"{self.limit}/{_UNIT_NAMES[seconds]}"
        else:
            text = f"{self.limit}/{_compact_window(seconds)}"
        return text if self.burst is None else f"{text} (burst {self.burst})"


def _compact_window(seconds: int) -> str:
    for size, suffix in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


@lru_cache(maxsize=4096)
def parse_rates(text: str) -> tuple[Rate, ...]:
    """Parse ``"5/second;10/minute"`` into rates, shortest window first.

    ``"unlimited"`` gives an empty tuple: nothing to check. Two rates with the
    same window in one string are refused, since they would share one counter.

    >>> parse_rates("100 per 15 minutes")
    (Rate(limit=100, window_ns=900000000000, burst=None),)
    """
    if not isinstance(text, str):
        raise TypeError(f"rates must be a string such as '10/minute', got {type(text).__name__}")
    items = [item.strip() for item in text.split(";")]
    if len(items) == 1 and items[0].lower() == "unlimited":
        return ()
    rates: list[Rate] = []
    for item in items:
        if not item:
            raise ValueError(f"empty rate in {text!r}")
        if item.lower() == "unlimited":
            raise ValueError(f"'unlimited' cannot be combined with other rates in {text!r}")
        rates.append(_parse_one(item, text))
    rates.sort(key=lambda rate: rate.window_ns)
    for earlier, later in pairwise(rates):
        if earlier.window_ns == later.window_ns:
            raise ValueError(f"two rates share the window {later.window:g}s in {text!r}")
    return tuple(rates)


def _parse_one(item: str, whole: str) -> Rate:
    match = _RATE_RE.match(item)
    if match is None:
        raise ValueError(
            f"malformed rate {item!r} in {whole!r}: expected 'N/unit', 'N per unit' or "
            "'N/15m' with unit second, minute, hour, day, week, month or year"
        )
    unit = match["unit"].lower()
    count = int(match["count"]) if match["count"] else 1
    unit_seconds = _UNIT_SECONDS.get(unit)
    if unit_seconds is None:
        raise ValueError(
            f"unknown time unit {match['unit']!r} in {whole!r}: use second, minute, hour, day, "
            "week, month or year"
        )
    limit = int(match["limit"])
    if limit < 1:
        raise ValueError(f"rate {item!r} in {whole!r} must allow at least 1 request")
    if count < 1:
        raise ValueError(f"rate {item!r} in {whole!r} has an empty window")
    return Rate(limit, count * unit_seconds * NS_PER_SECOND)

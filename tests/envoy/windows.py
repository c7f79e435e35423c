"""Bursts of requests inside one clock-aligned window of the real clock, for the Envoy tests.

Through a real Envoy the windows are ratekeeper's real, clock-aligned fixed
windows (epoch-aligned seconds, minutes, hours, days). A test that counts
the Nth request of a window must send its burst inside one window: for a
second, it waits for the next second to start (at most one second); for a
longer window it does not wait, it checks afterwards that no boundary was
crossed and starts again with fresh descriptor values (``attempt`` names them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

__all__ = ["DAY", "HOUR", "MINUTE", "SECOND", "Straddled", "in_next_second", "within_windows"]

SECOND, MINUTE, HOUR, DAY = 1, 60, 3600, 86400
_ATTEMPTS = 3
_MARGIN_S = 0.005  # past the boundary, so the server's clock is surely in the new second

T = TypeVar("T")


class Straddled(Exception):  # noqa: N818 - says what happened, not that it is an error
    """A burst crossed a window boundary: :func:`within_windows` runs it again."""


def in_next_second(burst: Callable[[], T]) -> T:
    """``burst()`` run right after the next whole second starts; :class:`Straddled` if it
    did not end in that second."""
    now = time.time()
    time.sleep(math.floor(now) + 1 - now + _MARGIN_S)
    second = int(time.time())
    result = burst()
    if int(time.time()) != second:
        raise Straddled
    return result


def _windows(sizes: Sequence[int]) -> tuple[int, ...]:
    now = time.time()
    return tuple(int(now // size) for size in sizes)


def within_windows(sizes: Sequence[int], burst: Callable[[int], T]) -> T:
    """``burst(attempt)``'s result, once it ran inside one window of each size in ``sizes``.

    A burst that crossed a boundary (or raised :class:`Straddled`) is run
    again with the next ``attempt``, which must name fresh descriptor values:
    the counters it left are dirty.
    """
    for attempt in range(_ATTEMPTS):
        before = _windows(sizes)
        try:
            result = burst(attempt)
        except Straddled:
            continue
        if _windows(sizes) == before:
            return result
    pytest.fail(f"{_ATTEMPTS} bursts each straddled a window boundary of {list(sizes)} s")

"""A settable clock: time moves by assignment in tests, never by sleeping."""

from __future__ import annotations

__all__ = ["Clock"]


class Clock:
    """``clock.t`` is the time in epoch seconds; the store calls ``clock()``."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

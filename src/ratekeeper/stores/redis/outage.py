"""Redis failures: counted, logged once per incident, answered as ``on_error`` says.

Every part of the Redis store (decisions, steps, leases, lockouts) shares one
:class:`Outage`, so an incident is one warning however many parts notice it,
and one more when Redis answers again.
"""

from __future__ import annotations

import logging

from ..base import StoreUnavailableError

__all__ = ["Outage"]

_log = logging.getLogger("ratekeeper.redis")


class Outage:
    """Redis failures: a count, one warning per incident, and what ``on_error`` says.

    ``failed`` raises :class:`StoreUnavailableError` when failing closed; the
    caller answers its "open" or "local" way otherwise.
    """

    def __init__(self, on_error: str) -> None:
        self.on_error = on_error
        self.errors = 0
        self.failing = False

    def failed(self, error: Exception) -> None:
        self.errors += 1
        if not self.failing:
            self.failing = True
            _log.warning(
                "Redis unavailable (%s: %s); failing %s until it answers again",
                type(error).__name__,
                error,
                self.on_error,
            )
        if self.on_error == "closed":
            raise StoreUnavailableError(str(error)) from error

    def recovered(self) -> None:
        if self.failing:
            self.failing = False
            _log.warning("Redis answers again (%d failed calls so far)", self.errors)

"""Redis failures: counted, logged once per incident, answered as ``on_error`` says.

Every part of the Redis store (decisions, steps, leases, lockouts) shares one
:class:`Outage`, so an incident is one warning however many parts notice it,
and one more when Redis answers again. Whoever wants to know besides the log
(the service's audit log) watches it: :meth:`Outage.watch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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
        self._watchers: list[Callable[[bool, str], None]] = []

    def watch(self, watcher: Callable[[bool, str], None]) -> None:
        """Call ``watcher(failing, what)`` when an incident starts (``True``, the error)
        and when it ends (``False``, the failed calls so far), on the caller's path:
        it must be quick and not raise (gather, write elsewhere)."""
        self._watchers.append(watcher)

    def _tell(self, failing: bool, what: str) -> None:
        for watcher in self._watchers:
            try:
                watcher(failing, what)
            except Exception:  # a watcher never changes what the store answers
                _log.exception("outage watcher %r failed", watcher)

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
            if self._watchers:
                self._tell(True, f"{type(error).__name__}: {error}")
        if self.on_error == "closed":
            raise StoreUnavailableError(str(error)) from error

    def recovered(self) -> None:
        if self.failing:
            self.failing = False
            _log.warning("Redis answers again (%d failed calls so far)", self.errors)
            if self._watchers:
                self._tell(False, f"{self.errors} failed calls so far")

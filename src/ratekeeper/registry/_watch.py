"""Keeping a limiter's keys fresh: one cheap query per interval, a full read on change.

A :class:`Watcher` asks the registry's revision (one integer) every
``every`` seconds, on a fixed schedule, so a change made on any replica is
seen within ``every`` seconds plus one query. Only when the revision moved,
or the service put another policy in force, does it read the live keys and
hand them to ``on_change`` (``limiter.use_keys``): a revoked key is then
unknown to this process's limiter, which answers it with the policy's
unknown-key response.

A database that fails is logged once per incident (and once when it
answers again); meanwhile the limiter keeps the keys it had.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..policy import KeyEntry, Policy

__all__ = ["Watcher"]

_log = logging.getLogger("ratekeeper.registry")


class Watcher:
    """Polls a registry for changes of its keys (see the module docstring).

    ``revision()`` and ``entries(policy)`` are the registry's; ``poll`` is one
    look, which the tests call directly; ``start`` runs looks in a daemon
    thread until ``stop``.
    """

    def __init__(
        self,
        revision: Callable[[], int],
        entries: Callable[[Policy], tuple[KeyEntry, ...]],
        policy: Callable[[], Policy],
        on_change: Callable[[tuple[KeyEntry, ...]], None],
        every: float = 1.0,
    ) -> None:
        if not every > 0:
            raise ValueError(f"every must be a positive number of seconds, got {every!r}")
        self.every = every
        self._revision = revision
        self._entries = entries
        self._policy = policy
        self._on_change = on_change
        self._seen: tuple[int, Policy] | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        #: looks that found a change (and called ``on_change``)
        self.changes = 0

    def poll(self) -> bool:
        """One look: hand the keys to ``on_change`` if they (or the policy) changed.

        Returns whether it did. Errors of the database raise.
        """
        revision = self._revision()
        policy = self._policy()
        seen = self._seen
        if seen is not None and seen[0] == revision and seen[1] is policy:
            return False
        entries = self._entries(policy)
        self._on_change(entries)
        self._seen = (revision, policy)
        self.changes += 1
        return True

    def start(self) -> None:
        """Look every ``every`` seconds in a daemon thread (started once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="ratekeeper-registry-watcher", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop looking; waits up to ``timeout`` seconds for a look in progress."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        due = time.monotonic()
        while True:
            due += self.every
            if self._stopped.wait(max(0.0, due - time.monotonic())):
                return
            if due < time.monotonic():  # a slow look: start the schedule again from now
                due = time.monotonic()
            try:
                self.poll()
            except Exception as error:  # the database is gone for now: keep the keys we have
                if not self._failing:
                    self._failing = True
                    _log.warning("the registry does not answer (%s); keeping its last keys", error)
                continue
            if self._failing:
                self._failing = False
                _log.warning("the registry answers again")

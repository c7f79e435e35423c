"""Counting every decision per minute, key and category, and writing it down every second.

:class:`UsageRecorder` is a :class:`~ratekeeper.engine.DecisionHook`: the limiter
calls it after each decision, on the request's path, so it only counts: one
dict lookup and a few integer additions under a lock nobody holds for long
(the flusher swaps the dict out under it). No I/O, no round trip: a
background thread adds the counts to the registry (``Registry.add_usage``)
every second, and runs the roll-up every minute. ``close()`` stops the
thread and flushes what is left, so a graceful shutdown loses no count.

Callers without a key are counted under ``anonymous``, never per address.
The minute of a decision is the store's clock at its step
(``DecisionEvent.time_ns``), so every replica files a decision under the
same minute.

Besides the counts it keeps, for this process only, a ring of the last
fifteen minutes per second (:meth:`recent`: the dashboard's live chart),
and it writes the audit rows of what it is told besides decisions: a block
a response started (its ``block_hook``), the store failing and answering
again (``store_watcher``), and, noticed lazily at a flush, a block this
process saw start that reached its end without being lifted by hand
(``block.end``).

A database that fails keeps the counts in memory (added to the next flush)
and is logged once per incident.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..engine import BlockEvent, DecisionEvent
from ..registry import ANONYMOUS, Registry, UsageRow
from ._words import ROW_INDEX

__all__ = ["UsageRecorder"]

_log = logging.getLogger("ratekeeper.analytics")

_NS_PER_MINUTE = 60_000_000_000
_NS_PER_SECOND = 1_000_000_000
#: seconds the per-second ring holds
RING_SECONDS = 900
#: blocks remembered until their end (beyond: the oldest are forgotten, and get no end row)
_MOST_BLOCKS = 10_000
#: who the recorder's audit rows say acted: the service itself
ACTOR = "ratekeeper"


class UsageRecorder:
    """Counts decisions for the registry (see the module docstring).

    ``every``: seconds between flushes; ``roll_up_every``: seconds between
    roll-ups (``None``: never; another replica or a cron job does them);
    ``clock``: epoch seconds, for :meth:`recent`, block ends and the roll-up
    (the store's clock in the service, so a fake one in tests agrees).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        every: float = 1.0,
        roll_up_every: float | None = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not every > 0:
            raise ValueError(f"every must be a positive number of seconds, got {every!r}")
        self.registry = registry
        self.every = every
        self.roll_up_every = roll_up_every
        self._clock = clock
        self._lock = threading.Lock()
        #: (minute start, key id, category) -> [allowed, rate, cap, block, unknown key, other, cost]
        self._counts: dict[tuple[int, str, str], list[int]] = {}
        #: [second, allowed, refused] per second, at ``second % RING_SECONDS``
        self._ring = [[0, 0, 0] for _ in range(RING_SECONDS)]
        #: audit rows to write: (kind, target, detail)
        self._audits: list[tuple[str, str | None, dict[str, Any]]] = []
        #: blocks seen starting: key -> (until, epoch seconds; when it started; lockout)
        self._blocks: dict[str, tuple[float, datetime, str]] = {}
        self._flushing = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        #: flushes that wrote to the database, and decisions written (for tests and logs)
        self.flushes = 0
        self.written = 0

    # on the request's path

    def __call__(self, event: DecisionEvent) -> None:
        """Count one decision (the :class:`~ratekeeper.engine.DecisionHook`)."""
        index = 0 if event.allowed else ROW_INDEX.get(event.outcome, 5)
        time_ns = event.time_ns
        bucket = (time_ns // _NS_PER_MINUTE * 60, event.key_id or ANONYMOUS, event.category or "")
        second = time_ns // _NS_PER_SECOND
        with self._lock:
            counts = self._counts.get(bucket)
            if counts is None:
                counts = self._counts[bucket] = [0, 0, 0, 0, 0, 0, 0]
            counts[index] += 1
            slot = self._ring[second % RING_SECONDS]
            if slot[0] != second:
                slot[0], slot[1], slot[2] = second, 0, 0
            if index:
                slot[2] += 1
            else:
                counts[6] += event.cost
                slot[1] += 1

    def block_hook(self, event: BlockEvent) -> None:
        """A block a response started (a :class:`~ratekeeper.engine.BlockHook`): audited."""
        until = event.until_ns / _NS_PER_SECOND
        detail = {
            "lockout": event.lockout, "until": _iso_seconds(until), "streak": event.streak,
            "category": event.category, "key_id": event.key_id,
        }  # fmt: skip
        with self._lock:
            self._audits.append(("block.start", event.key, detail))
            blocks = self._blocks
            blocks.pop(event.key, None)
            if len(blocks) >= _MOST_BLOCKS:
                del blocks[next(iter(blocks))]
            blocks[event.key] = (until, datetime.now(UTC), event.lockout)

    def store_watcher(self, failing: bool, what: str) -> None:
        """The store failing (``True``) or answering again: audited (``Outage.watch``)."""
        kind, detail = ("store.failure", {"error": what}) if failing else (
            "store.recovery", {"errors": what})  # fmt: skip
        with self._lock:
            self._audits.append((kind, "store", detail))

    # what the dashboard reads

    def recent(self, seconds: int = 300) -> list[tuple[int, int, int]]:
        """``(epoch second, allowed, refused)`` of each of the last ``seconds`` seconds
        (at most 900) in this process, oldest first, zeros where nothing was decided."""
        seconds = max(1, min(seconds, RING_SECONDS))
        now = int(self._clock())
        ring = self._ring
        answer = []
        with self._lock:
            for second in range(now - seconds + 1, now + 1):
                slot = ring[second % RING_SECONDS]
                answer.append((second, slot[1], slot[2]) if slot[0] == second else (second, 0, 0))
        return answer

    # in the background

    def start(self) -> None:
        """Flush every ``every`` seconds (and roll up) in a daemon thread, until :meth:`close`."""
        if self._thread is None and not self._stopped.is_set():
            self._thread = threading.Thread(
                target=self._run, name="ratekeeper-usage-recorder", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread and flush what is left; whether everything was written.

        A database that refuses the last flush gets two more tries; what is
        still unwritten then is logged as lost (with its number of decisions).
        """
        self._stopped.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for attempt in range(3):
            if self.flush():
                return True
            if attempt < 2:
                time.sleep(0.5)
        with self._lock:
            lost = sum(sum(counts[:6]) for counts in self._counts.values())
        _log.error("usage analytics: %d decisions could not be written at shutdown", lost)
        return False

    def flush(self) -> bool:
        """Write the counts gathered so far and the audit rows waiting; whether all went.

        What the database refuses stays for the next flush. Never raises.
        """
        with self._flushing:
            with self._lock:
                counts, self._counts = self._counts, {}
                audits, self._audits = self._audits, []
            # each write keeps what it could not write for the next flush: all are tried
            counted = self._write_counts(counts)
            audited = self._write_audits(audits)
            ok = self._notice_ended_blocks() and counted and audited
            if ok and self._failing:
                self._failing = False
                _log.warning("usage analytics: the registry answers again")
            return ok

    def roll_up(self) -> bool:
        """Run the registry's roll-up at the clock's now; whether it went."""
        try:
            self.registry.roll_up(datetime.fromtimestamp(self._clock(), UTC))
        except Exception as error:
            self._failed(error)
            return False
        return True

    def _write_counts(self, counts: dict[tuple[int, str, str], list[int]]) -> bool:
        if not counts:
            return True
        rows = [
            UsageRow(datetime.fromtimestamp(start, UTC), key_id, category, *numbers)
            for (start, key_id, category), numbers in counts.items()
        ]
        try:
            self.registry.add_usage(rows)
        except Exception as error:
            with self._lock:  # back into the next flush, added to what came meanwhile
                current = self._counts
                for bucket, numbers in counts.items():
                    found = current.get(bucket)
                    if found is None:
                        current[bucket] = numbers
                    else:
                        for index, number in enumerate(numbers):
                            found[index] += number
            self._failed(error)
            return False
        self.flushes += 1
        self.written += sum(sum(numbers[:6]) for numbers in counts.values())
        return True

    def _write_audits(self, audits: list[tuple[str, str | None, dict[str, Any]]]) -> bool:
        for done, (kind, target, detail) in enumerate(audits):
            try:
                self.registry.record(kind, actor=ACTOR, target=target, detail=detail)
            except Exception as error:
                with self._lock:
                    self._audits[:0] = audits[done:]
                self._failed(error)
                return False
        return True

    def _notice_ended_blocks(self) -> bool:
        """``block.end`` for each block seen starting whose end has come, unless it was
        lifted by hand meanwhile (a ``block.lift`` row, on any replica)."""
        now = self._clock()
        with self._lock:
            ended = [(key, seen) for key, seen in self._blocks.items() if seen[0] <= now]
            for key, _ in ended:
                del self._blocks[key]
        for done, (key, (until, started, lockout)) in enumerate(ended):
            try:
                if not self.registry.audit(since=started, key=key, kind="block.lift", limit=1):
                    detail = {"lockout": lockout, "until": _iso_seconds(until)}
                    self.registry.record("block.end", actor=ACTOR, target=key, detail=detail)
            except Exception as error:
                with self._lock:
                    self._blocks.update(ended[done:])
                self._failed(error)
                return False
        return True

    def _failed(self, error: Exception) -> None:
        if not self._failing:
            self._failing = True
            _log.warning(
                "usage analytics: the registry does not answer (%s); counts are kept and "
                "written when it does",
                error,
            )

    def _run(self) -> None:
        due = time.monotonic()
        roll_every = self.roll_up_every
        roll_due = due + roll_every if roll_every is not None else None
        while True:
            due += self.every
            if self._stopped.wait(max(0.0, due - time.monotonic())):
                return
            if due < time.monotonic():  # a slow flush: start the schedule again from now
                due = time.monotonic()
            self.flush()
            if roll_due is not None and roll_every is not None and time.monotonic() >= roll_due:
                roll_due = time.monotonic() + roll_every
                self.roll_up()


def _iso_seconds(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")

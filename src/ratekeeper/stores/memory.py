"""The in-process store: counters in dictionaries, bounded, for one process.

Thread-safe (one lock around each decision, held for microseconds) and usable
from asyncio directly: no decision ever waits on I/O, so the async face simply
calls the sync one (``never_waits``). Counters, leases and lockouts share the
lock, so ``decide`` takes it once for a whole step (blocks, leases, charges,
penalty) and calls the tables' lock-free variants.

Memory is bounded in two ways. State that has expired (its window is over) is
dropped: the two least recently used keys of a table are checked on each
insert, those of every table when the store is full, and a full sweep of every
key runs when the store is full, at most once per ``sweep_interval``. When
``max_keys`` keys are tracked and a new one arrives after all that, the least
recently used key of the same counter family is evicted even though its window
is not over: that resets its count, so it is counted in ``stats().evictions``
(a number an operator should watch).

The guarantee, precisely: a live key is evicted only when the store is full of
keys that were live at the last full sweep (at most ``sweep_interval`` ago) or
sit behind the checked least recently used ones. Recency is not expiry order
(a token bucket key hit at cost 1 expires sooner than one hit at cost 5), and
keeping an index by expiry time would cost more memory per key than the state
itself, so a key that expired since the last sweep may outlive a live one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..rates import NS_PER_SECOND
from .base import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    Charge,
    ChargeResult,
    LimitSpec,
    Step,
    StepResult,
)
from .leases import LeaseTable, check_lease
from .lockouts import LockoutTable

__all__ = ["MemoryStats", "MemoryStore"]

#: expired keys checked at the LRU end of a table on each insert
_TRIM_PER_INSERT = 2
#: what ``reset`` finds for a key a table does not hold
_GONE = object()


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """What the memory store holds and what the bound has cost."""

    keys: int
    max_keys: int
    evictions: int
    expired: int


class _Table:
    """The keys of one counter family (one algorithm, window and limit)."""

    __slots__ = ("algorithm", "data", "limit", "window")

    def __init__(self, spec: LimitSpec) -> None:
        self.algorithm = spec.algorithm
        self.limit = spec.limit
        self.window = spec.window_ns
        self.data: OrderedDict[str, Any] = OrderedDict()


class MemoryStore:
    """Counters in process memory.

    ``clock`` returns epoch seconds (``time.time`` by default); tests pass a
    fake one. ``max_keys`` bounds the number of tracked (key, window) pairs.
    """

    #: no call waits on I/O: the async faces only call the sync ones
    never_waits = True
    #: any keys may be decided together
    one_slot = False

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        max_keys: int = 1_000_000,
        sweep_interval: float = 1.0,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._now: Callable[[], int]
        if clock is None:
            self._now = time.time_ns
        else:
            self._now = lambda: round(clock() * NS_PER_SECOND)
        self.max_keys = max_keys
        self._sweep_interval_ns = round(sweep_interval * NS_PER_SECOND)
        self._next_sweep = 0
        self._last_now = 0
        #: changes when every counter is forgotten, so caches of decisions know
        self.generation = 0
        #: never: memory is always there (see ``RedisStore.degraded``)
        self.degraded = False
        self._tables: dict[str, _Table] = {}
        self._size = 0
        self._evictions = 0
        self._expired = 0
        self._lock = threading.Lock()
        self.leases = LeaseTable(self._now, self._lock)
        self.lockouts = LockoutTable(self._now, self._lock)

    def now_ns(self) -> int:
        return self._now()

    def apply(
        self, charges: Sequence[Charge], consume: bool = True
    ) -> tuple[bool, list[ChargeResult]]:
        if consume and len(charges) == 1:
            spec, key, cost, shadow = charges[0]
            result = self.apply_one(spec, key, cost)
            return result[0] or shadow, [result]
        with self._lock:
            # read under the lock, never going back: logs stay in time order even
            # when threads race or the system clock steps backwards
            now = self._now()
            if now < self._last_now:
                now = self._last_now
            self._last_now = now
            return self._charge(charges, consume, now)

    def decide(self, step: Step) -> StepResult:
        """Blocks, leases, charges and penalty of ``step`` under one lock (see :class:`Step`)."""
        asks = step.leases
        for _, cap, ttl_ns in asks:
            check_lease(cap, ttl_ns)
        with self._lock:
            now = self._now()
            if now < self._last_now:
                now = self._last_now
            self._last_now = now
            lockouts = self.lockouts
            for index, block_key in enumerate(step.blocks):
                block = lockouts._status(block_key, now)
                if block.until_ns:
                    return StepResult(BLOCKED, [], now, index, block)
            consume = step.consume
            leases = self.leases
            taken: list[tuple[str, str]] = []
            asked: dict[str, int] = {}  # a peek's slots per key, counted as if taken
            for index, (lease_key, cap, ttl_ns) in enumerate(asks):
                if consume:
                    lease_id = leases._acquire(lease_key, cap, ttl_ns, now).lease_id
                    if lease_id is not None:
                        taken.append((lease_key, lease_id))
                        continue
                else:
                    held = leases._in_use(lease_key, now) + asked.get(lease_key, 0)
                    if held < cap:
                        asked[lease_key] = asked.get(lease_key, 0) + 1
                        continue
                for each, lease_id in taken:
                    leases._release(each, lease_id, now)
                return StepResult(REFUSED_BY_CAP, [], now, index)
            admitted, results = self._charge(step.charges, consume, now, step.peeks)
            if admitted:
                return StepResult(ADMITTED, results, now, leases=tuple(taken))
            for each, lease_id in taken:
                leases._release(each, lease_id, now)
            penalty = step.penalty
            if penalty is None or not consume:
                return StepResult(REFUSED_BY_RATE, results, now)
            failure = lockouts._record_failure(penalty[0], penalty[1], now)
            started = failure if failure.until_ns else None
            return StepResult(REFUSED_BY_RATE, results, now, block=started)

    async def decide_async(self, step: Step) -> StepResult:
        return self.decide(step)

    def _charge(
        self,
        charges: Sequence[Charge],
        consume: bool,
        now: int,
        peeks: frozenset[int] = frozenset(),
    ) -> tuple[bool, list[ChargeResult]]:
        """``apply``'s decision at ``now``, under the lock, which the caller holds.

        The charges whose index is in ``peeks`` are decided but never consumed.
        """
        tables = self._tables
        evaluations = []
        admitted = True
        for spec, key, cost, shadow in charges:
            table = tables.get(spec.slot)
            if table is None:
                table = tables[spec.slot] = _Table(spec)
            data = table.data
            state = data.get(key)
            if state is not None:
                data.move_to_end(key)
            evaluation = spec.evaluate(state, now, cost, spec.limit, spec.window_ns, spec.capacity)
            evaluations.append((evaluation, state, table))
            if not evaluation[0] and not shadow:
                admitted = False
        if not (admitted and consume):
            return admitted, [
                self._unconsumed(charge, evaluation, now)
                for charge, (evaluation, _, _) in zip(charges, evaluations, strict=True)
            ]
        results: list[ChargeResult] = []
        for index, ((spec, key, cost, _shadow), (evaluation, state, table)) in enumerate(
            zip(charges, evaluations, strict=True)
        ):
            allowed, room, reset, retry, next_state = evaluation
            if peeks and index in peeks:
                results.append(self._unconsumed(charges[index], evaluation, now))
            elif not allowed:
                results.append((False, room, reset, retry))
            elif not cost:
                results.append((True, room, reset, 0))
            else:
                if spec.algorithm.in_place:
                    self._store(spec, key, now, cost, next_state)
                else:
                    if state is None:
                        self._make_room(table, now)
                        self._size += 1
                    table.data[key] = next_state
                results.append((True, room - cost, reset, 0))
        return True, results

    def apply_one(self, spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        """``apply`` of one enforced charge, without the batch bookkeeping."""
        lock = self._lock
        lock.acquire()  # not ``with``: half the cost on every request
        try:
            now = self._now()
            if now < self._last_now:
                now = self._last_now
            else:
                self._last_now = now
            table = self._tables.get(spec.slot)
            if table is None:
                table = self._tables[spec.slot] = _Table(spec)
            data = table.data
            state = data.get(key)
            if state is not None:
                data.move_to_end(key)
            allowed, room, reset, retry, next_state = spec.evaluate(
                state, now, cost, spec.limit, spec.window_ns, spec.capacity
            )
            if not allowed:
                return False, room, reset, retry
            if not cost:
                return True, room, reset, 0
            if spec.algorithm.in_place:
                self._store(spec, key, now, cost, next_state)
            else:
                if state is None:
                    self._make_room(table, now)
                    self._size += 1
                data[key] = next_state
            return True, room - cost, reset, 0
        finally:
            lock.release()

    async def apply_one_async(self, spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        return self.apply_one(spec, key, cost)

    async def apply_async(
        self, charges: Sequence[Charge], consume: bool = True
    ) -> tuple[bool, list[ChargeResult]]:
        return self.apply(charges, consume)

    def reset(self, counters: Sequence[tuple[LimitSpec, str]]) -> int:
        """Forget the counters ``(spec, key)``: each starts again with its whole quota.

        For the admin API's reset of one key's counters: exactly those counters
        go, nothing else (leases, lockouts and other keys stay). Returns how
        many were there.
        """
        dropped = 0
        with self._lock:
            for spec, key in counters:
                table = self._tables.get(spec.slot)
                if table is not None and table.data.pop(key, _GONE) is not _GONE:
                    dropped += 1
            self._size -= dropped
        return dropped

    async def reset_async(self, counters: Sequence[tuple[LimitSpec, str]]) -> int:
        """``reset`` for asyncio callers."""
        return self.reset(counters)

    def _unconsumed(self, charge: Charge, evaluation: Any, now: int) -> ChargeResult:
        """A charge's result when the batch was denied: nothing was taken from it."""
        allowed, room, reset, retry, _ = evaluation
        if not allowed:
            return False, room, reset, retry
        spec, key = charge[0], charge[1]
        state = self._tables[spec.slot].data.get(key)
        untouched = spec.algorithm.evaluate(
            state, now, 0, spec.limit, spec.window_ns, spec.capacity
        )
        return True, room, untouched[2], 0

    def _store(self, spec: LimitSpec, key: str, now: int, cost: int, next_state: Any) -> None:
        table = self._tables[spec.slot]
        data = table.data
        if spec.algorithm.in_place:
            state = data.get(key)
            if state is None:
                self._make_room(table, now)
                data[key] = spec.algorithm.consume(None, now, cost)
                self._size += 1
            else:
                spec.algorithm.consume(state, now, cost)
            return
        if key not in data:
            self._make_room(table, now)
            self._size += 1
        data[key] = next_state

    def _make_room(self, table: _Table, now: int) -> None:
        """Before an insert: drop expired keys, and evict if the bound forces it."""
        self._trim(table, now, _TRIM_PER_INSERT)
        if self._size < self.max_keys:
            return
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval_ns
            for each in self._tables.values():
                self._trim(each, now, None)
            if self._size < self.max_keys:
                return
        else:
            # between full sweeps, before evicting a live key: drop the expired keys at
            # the LRU end of every other table (other windows expire on their own clock)
            for each in self._tables.values():
                if each is not table:
                    self._trim(each, now, _TRIM_PER_INSERT)
            if self._size < self.max_keys:
                return
        victim = table if table.data else max(self._tables.values(), key=lambda t: len(t.data))
        victim.data.popitem(last=False)
        self._size -= 1
        self._evictions += 1

    def _trim(self, table: _Table, now: int, limit: int | None) -> None:
        """Drop expired keys from the least recently used end of ``table``.

        With ``limit`` it looks at that many keys only (cheap, on every
        insert); without, it checks the whole table.
        """
        data = table.data
        expires_at = table.algorithm.expires_at
        if limit is not None:
            oldest = list(islice(data.items(), limit))
            for key, state in oldest:
                if expires_at(state, table.limit, table.window) <= now:
                    del data[key]
                    self._size -= 1
                    self._expired += 1
            return
        dead = [
            key
            for key, state in data.items()
            if expires_at(state, table.limit, table.window) <= now
        ]
        for key in dead:
            del data[key]
        self._size -= len(dead)
        self._expired += len(dead)

    def ping(self) -> bool:
        """Is the store there? Always: memory answers while the process lives (``/healthz``)."""
        return True

    async def ping_async(self) -> bool:
        """``ping`` for asyncio callers."""
        return True

    def stats(self) -> MemoryStats:
        """How many keys are tracked, and how many were evicted or expired."""
        with self._lock:
            return MemoryStats(self._size, self.max_keys, self._evictions, self._expired)

    def clear(self) -> None:
        """Forget every counter, lease and lockout."""
        with self._lock:
            self._tables.clear()
            self._size = 0
            self.generation += 1
        self.leases.clear()
        self.lockouts.clear()

    def __repr__(self) -> str:
        return f"MemoryStore(keys={self._size}, max_keys={self.max_keys})"

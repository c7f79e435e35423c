"""Lockouts: count failures per key; past a threshold, block the key for a while.

This is the mechanism behind failed-login throttling ("5 failed logins from one
IP within 15 minutes block that IP for 15 minutes") and behind the penalty for
clients that keep hammering while limited. Failures are counted exactly (a log
of their times within ``window``). Each block may be longer than the last
(``escalation``): the n-th block in a row lasts ``block * escalation**(n-1)``,
capped at ``max_block``; the streak is forgotten after ``streak_memory`` of
quiet following the last block.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..rates import NS_PER_SECOND

__all__ = ["Block", "LockoutRule", "LockoutTable"]

#: entries looked at for expiry on each recorded failure
_TRIM_PER_FAILURE = 2


@dataclass(frozen=True, slots=True)
class LockoutRule:
    """When failures turn into a block, and for how long (seconds)."""

    threshold: int
    window: float
    block: float
    escalation: float = 1.0
    max_block: float | None = None
    streak_memory: float = 86400.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"lockout threshold must be at least 1, got {self.threshold}")
        if self.window <= 0 or self.block <= 0:
            raise ValueError("lockout window and block must be positive durations")
        if self.escalation < 1:
            raise ValueError(f"lockout escalation must be at least 1, got {self.escalation}")
        if self.max_block is not None and self.max_block < self.block:
            raise ValueError(
                f"lockout max_block must be at least block ({self.block}), got {self.max_block}"
            )

    def block_ns(self, streak: int) -> int:
        seconds = self.block * self.escalation ** (streak - 1)
        if self.max_block is not None:
            seconds = min(seconds, self.max_block)
        return round(seconds * NS_PER_SECOND)


@dataclass(frozen=True, slots=True)
class Block:
    """A key's lockout state: blocked until ``until_ns`` (0 when not blocked)."""

    key: str
    until_ns: int
    failures: int
    streak: int

    @property
    def blocked(self) -> bool:
        return self.until_ns > 0

    @property
    def until(self) -> float:
        """Epoch seconds when the block ends."""
        return self.until_ns / NS_PER_SECOND


class _Entry:
    __slots__ = ("expires", "failures", "last_block_end", "streak", "until")

    def __init__(self) -> None:
        self.failures: deque[int] = deque()
        self.until = 0
        self.streak = 0
        self.last_block_end = 0
        #: when the entry says nothing any more: no failure in the window, no block, no streak
        self.expires = 0


class LockoutTable:
    """Failure logs and blocks per key."""

    def __init__(self, now: Callable[[], int], lock: threading.Lock) -> None:
        self._now = now
        self._lock = lock
        self._entries: dict[str, _Entry] = {}

    def record_failure(self, key: str, rule: LockoutRule) -> Block:
        """Count one failure of ``key``; block it when this reaches the threshold."""
        now = self._now()
        with self._lock:
            return self._record_failure(key, rule, now)

    # the same under the store's lock, which the caller holds (``MemoryStore.decide``)

    def _record_failure(self, key: str, rule: LockoutRule, now: int) -> Block:
        self._trim(now)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        if entry.until > now:
            return Block(key, entry.until, len(entry.failures), entry.streak)
        window = round(rule.window * NS_PER_SECOND)
        horizon = now - window
        failures = entry.failures
        while failures and failures[0] <= horizon:
            failures.popleft()
        failures.append(now)
        entry.expires = max(entry.expires, now + window)
        if len(failures) < rule.threshold:
            return Block(key, 0, len(failures), entry.streak)
        memory = round(rule.streak_memory * NS_PER_SECOND)
        if entry.last_block_end + memory <= now:
            entry.streak = 0
        entry.streak += 1
        entry.until = now + rule.block_ns(entry.streak)
        entry.last_block_end = entry.until
        entry.expires = max(entry.expires, entry.until + memory)
        failures.clear()
        return Block(key, entry.until, rule.threshold, entry.streak)

    def _status(self, key: str, now: int) -> Block:
        entry = self._entries.get(key)
        if entry is None:
            return Block(key, 0, 0, 0)
        until = entry.until if entry.until > now else 0
        return Block(key, until, len(entry.failures), entry.streak)

    def _trim(self, now: int) -> None:
        """Forget the two oldest entries if they say nothing any more; else requeue them."""
        entries = self._entries
        for _ in range(_TRIM_PER_FAILURE):
            if not entries:
                return
            key = next(iter(entries))
            entry = entries.pop(key)
            if entry.expires > now:
                entries[key] = entry

    async def record_failure_async(self, key: str, rule: LockoutRule) -> Block:
        return self.record_failure(key, rule)

    async def status_async(self, key: str) -> Block:
        return self.status(key)

    def status(self, key: str) -> Block:
        """Whether ``key`` is blocked now, and its recent failures."""
        now = self._now()
        with self._lock:
            return self._status(key, now)

    def unblock(self, key: str) -> bool:
        """Lift ``key``'s block and forget its failures; ``False`` if it had none."""
        with self._lock:
            entry = self._entries.pop(key, None)
            return entry is not None and entry.until > self._now()

    def blocks(self) -> list[Block]:
        """Every key blocked now, soonest to end first."""
        now = self._now()
        with self._lock:
            live = [
                Block(key, entry.until, len(entry.failures), entry.streak)
                for key, entry in self._entries.items()
                if entry.until > now
            ]
        return sorted(live, key=lambda block: block.until_ns)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

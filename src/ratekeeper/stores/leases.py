"""Concurrency leases: "at most N requests of this key in flight".

A lease is taken when a request starts and released when its response has been
sent. Each lease carries an expiry so that a holder that died (a crashed worker,
a lost connection never noticed) cannot hold a slot for ever: its lease simply
stops counting after ``ttl``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..rates import NS_PER_SECOND

__all__ = ["LeaseGrant", "LeaseTable", "check_lease"]

#: keys whose expired leases are looked for on each acquire
_TRIM_PER_ACQUIRE = 2


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """The answer to a lease request.

    ``lease_id`` is ``None`` when the cap was reached; ``in_use`` counts the
    live leases after this request (including the new one when granted).
    """

    lease_id: str | None
    limit: int
    in_use: int

    @property
    def acquired(self) -> bool:
        return self.lease_id is not None


def check_lease(limit: int, ttl_ns: int) -> None:
    """A cap of at least one slot, a lease that lasts: else ``ValueError``."""
    if limit < 1:
        raise ValueError(f"concurrency limit must be at least 1, got {limit}")
    if ttl_ns <= 0:
        raise ValueError(f"lease ttl must be positive, got {ttl_ns / NS_PER_SECOND} s")


class LeaseTable:
    """Live leases per key: ``{key: {lease_id: expires_at_ns}}``."""

    def __init__(self, now: Callable[[], int], lock: threading.Lock) -> None:
        self._now = now
        self._lock = lock
        self._leases: dict[str, dict[str, int]] = {}

    def acquire(self, key: str, limit: int, ttl: float) -> LeaseGrant:
        """Take one of ``limit`` slots of ``key`` for at most ``ttl`` seconds."""
        ttl_ns = round(ttl * NS_PER_SECOND)
        check_lease(limit, ttl_ns)
        now = self._now()
        with self._lock:
            return self._acquire(key, limit, ttl_ns, now)

    async def acquire_async(self, key: str, limit: int, ttl: float) -> LeaseGrant:
        return self.acquire(key, limit, ttl)

    async def release_async(self, key: str, lease_id: str) -> bool:
        return self.release(key, lease_id)

    def release(self, key: str, lease_id: str) -> bool:
        """Give a slot back; ``False`` when the lease had expired or was unknown."""
        now = self._now()
        with self._lock:
            return self._release(key, lease_id, now)

    # the same under the store's lock, which the caller holds (``MemoryStore.decide``)

    def _acquire(self, key: str, limit: int, ttl_ns: int, now: int) -> LeaseGrant:
        self._trim(now)
        held = self._live(key, now)
        if len(held) >= limit:
            return LeaseGrant(None, limit, len(held))
        lease_id = secrets.token_hex(8)
        if held is _EMPTY:
            held = self._leases[key] = {}
        held[lease_id] = now + ttl_ns
        return LeaseGrant(lease_id, limit, len(held))

    def _release(self, key: str, lease_id: str, now: int) -> bool:
        held = self._leases.get(key)
        if held is None:
            return False
        expires = held.pop(lease_id, None)
        if not held:
            del self._leases[key]
        return expires is not None and expires > now

    def _in_use(self, key: str, now: int) -> int:
        return len(self._live(key, now))

    def in_use(self, key: str) -> int:
        """Live leases of ``key`` now."""
        with self._lock:
            return self._in_use(key, self._now())

    def _trim(self, now: int) -> None:
        """Drop the expired leases of the two oldest keys; keys still held go to the back.

        Holders that die and keys never seen again would otherwise stay for ever.
        """
        leases = self._leases
        for _ in range(_TRIM_PER_ACQUIRE):
            if not leases:
                return
            key = next(iter(leases))
            live = {lease: expires for lease, expires in leases.pop(key).items() if expires > now}
            if live:
                leases[key] = live

    def _live(self, key: str, now: int) -> dict[str, int]:
        held = self._leases.get(key)
        if held is None:
            return _EMPTY
        expired = [lease for lease, expires in held.items() if expires <= now]
        for lease in expired:
            del held[lease]
        if not held:
            del self._leases[key]
            return _EMPTY
        return held

    def clear(self) -> None:
        with self._lock:
            self._leases.clear()


_EMPTY: dict[str, int] = {}

"""Concurrency leases and lockouts kept in Redis, shared by every process.

Same contract as the memory store's :class:`~ratekeeper.stores.LeaseTable` and
:class:`~ratekeeper.stores.LockoutTable` (the contract vectors run on both):
each operation that changes state is one script (``lua/lease_*.lua``,
``lua/lockout_failure.lua``), so concurrent workers never race. Reads are
plain commands.

Keys: ``rk:lease:{key}`` (a sorted set of lease ids by expiry),
``rk:lockout:{key}:log`` (failure times) and ``rk:lockout:{key}:block``
(``"until streak last_block_end"``), the caller's key being the hash tag
(``keys.py``). A step (``RedisStore.decide``) reads and writes the same keys
with the same Lua code (``lua/leases.lua``, ``lua/lockouts.lua``), so these
operations see what a step did and a step sees what they did.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ...rates import NS_PER_MS, NS_PER_SECOND
from ..leases import LeaseGrant, check_lease
from ..lockouts import Block, LockoutRule
from ..memory import MemoryStore
from .keys import RedisKey, lease_name, lockout_names
from .outage import Outage
from .scripts import Scripts

__all__ = ["RedisLeases", "RedisLockouts"]


T = TypeVar("T")


class _RedisTable:
    """What leases and lockouts share: the clients, scripts, and failing per ``on_error``."""

    _script_names: tuple[str, ...] = ()

    def __init__(
        self,
        client: Any,
        async_client: Callable[[], Any],
        prefix: str,
        now_ms: Callable[[], str],
        outage: Outage,
        local: MemoryStore | None = None,
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._prefix = prefix
        self._now_ms = now_ms
        self._outage = outage
        self._local = local
        self._scripts = Scripts(self._script_names, client, async_client)

    def _guarded(self, call: Callable[[], T], fallback: Callable[[], T]) -> T:
        """``call()``; when Redis fails, ``fallback()`` (or StoreUnavailableError if closed)."""
        try:
            return call()
        except Exception as error:  # any client failure is a store failure
            self._outage.failed(error)
            return fallback()

    async def _guarded_async(
        self, call: Callable[[], Awaitable[T]], fallback: Callable[[], T]
    ) -> T:
        try:
            return await call()
        except Exception as error:  # any client failure is a store failure
            self._outage.failed(error)
            return fallback()


class RedisLeases(_RedisTable):
    """Concurrency leases in Redis: ``acquire`` / ``release`` / ``in_use``.

    While Redis is down, failing open grants leases that count nowhere;
    ``"local"`` keeps them in this process.
    """

    _script_names = ("lease_acquire", "lease_release")

    def _key(self, key: str) -> RedisKey:
        return lease_name(self._prefix, key)

    def _acquire_args(self, limit: int, ttl: float) -> list[Any]:
        check_lease(limit, round(ttl * NS_PER_SECOND))
        return [limit, max(1, round(ttl * 1000)), secrets.token_hex(8), self._now_ms()]

    def _acquire_fallback(self, key: str, limit: int, ttl: float) -> LeaseGrant:
        if self._local is not None:
            return self._local.leases.acquire(key, limit, ttl)
        return LeaseGrant(secrets.token_hex(8), limit, 0)

    def acquire(self, key: str, limit: int, ttl: float) -> LeaseGrant:
        """Take one of ``limit`` slots of ``key`` for at most ``ttl`` seconds."""
        args = self._acquire_args(limit, ttl)

        def call() -> LeaseGrant:
            script = self._scripts.sync("lease_acquire")
            granted, held = script(keys=[self._key(key)], args=args)
            return LeaseGrant(args[2] if granted == 1 else None, limit, int(held))

        return self._guarded(call, lambda: self._acquire_fallback(key, limit, ttl))

    async def acquire_async(self, key: str, limit: int, ttl: float) -> LeaseGrant:
        args = self._acquire_args(limit, ttl)

        async def call() -> LeaseGrant:
            script = self._scripts.asynchronous("lease_acquire")
            granted, held = await script(keys=[self._key(key)], args=args)
            return LeaseGrant(args[2] if granted == 1 else None, limit, int(held))

        return await self._guarded_async(call, lambda: self._acquire_fallback(key, limit, ttl))

    def _release_fallback(self, key: str, lease_id: str) -> bool:
        return self._local.leases.release(key, lease_id) if self._local is not None else False

    def release(self, key: str, lease_id: str) -> bool:
        """Give a slot back; ``False`` when the lease had expired or was unknown."""

        def call() -> bool:
            script = self._scripts.sync("lease_release")
            return bool(script(keys=[self._key(key)], args=[lease_id, self._now_ms()]) == 1)

        return self._guarded(call, lambda: self._release_fallback(key, lease_id))

    async def release_async(self, key: str, lease_id: str) -> bool:
        async def call() -> bool:
            script = self._scripts.asynchronous("lease_release")
            return bool(await script(keys=[self._key(key)], args=[lease_id, self._now_ms()]) == 1)

        return await self._guarded_async(call, lambda: self._release_fallback(key, lease_id))

    def in_use(self, key: str) -> int:
        """Live leases of ``key`` now."""

        def call() -> int:
            now = self._now_ms() or _server_now_ms(self._client)
            return int(self._client.zcount(self._key(key), f"({now}", "+inf"))

        local = self._local
        return self._guarded(call, lambda: local.leases.in_use(key) if local is not None else 0)

    def clear(self) -> None:
        """Nothing to do: leases expire by themselves (``FLUSHDB`` forgets them)."""


class RedisLockouts(_RedisTable):
    """Failure counters and blocks in Redis.

    While Redis is down, failing open counts nothing and blocks no one;
    ``"local"`` counts and blocks in this process.
    """

    _script_names = ("lockout_failure",)

    def _keys(self, key: str) -> list[RedisKey]:
        return list(lockout_names(self._prefix, key))

    def _args(self, rule: LockoutRule) -> list[Any]:
        return [
            rule.threshold,
            round(rule.window * 1000),
            round(rule.block * 1000),
            repr(rule.escalation),
            "" if rule.max_block is None else round(rule.max_block * 1000),
            round(rule.streak_memory * 1000),
            self._now_ms(),
        ]

    def _failure_fallback(self, key: str, rule: LockoutRule) -> Block:
        if self._local is not None:
            return self._local.lockouts.record_failure(key, rule)
        return Block(key, 0, 0, 0)

    def _status_fallback(self, key: str) -> Block:
        if self._local is not None:
            return self._local.lockouts.status(key)
        return Block(key, 0, 0, 0)

    def record_failure(self, key: str, rule: LockoutRule) -> Block:
        """Count one failure of ``key``; block it when this reaches the threshold."""

        def call() -> Block:
            script = self._scripts.sync("lockout_failure")
            until, failures, streak = script(keys=self._keys(key), args=self._args(rule))
            return Block(key, int(until) * NS_PER_MS, int(failures), int(streak))

        return self._guarded(call, lambda: self._failure_fallback(key, rule))

    async def record_failure_async(self, key: str, rule: LockoutRule) -> Block:
        async def call() -> Block:
            script = self._scripts.asynchronous("lockout_failure")
            until, failures, streak = await script(keys=self._keys(key), args=self._args(rule))
            return Block(key, int(until) * NS_PER_MS, int(failures), int(streak))

        return await self._guarded_async(call, lambda: self._failure_fallback(key, rule))

    def status(self, key: str) -> Block:
        """Whether ``key`` is blocked now, and its recent failures."""

        def call() -> Block:
            log, block = self._keys(key)
            state = self._client.get(block)
            failures = self._client.llen(log)
            now = self._now_ms() or _server_now_ms(self._client) if state else "0"
            return _block(key, state, failures, int(now))

        return self._guarded(call, lambda: self._status_fallback(key))

    async def status_async(self, key: str) -> Block:
        async def call() -> Block:
            log, block = self._keys(key)
            client = self._async_client()
            state = await client.get(block)
            failures = await client.llen(log)
            now = self._now_ms()
            if state and not now:
                seconds, micros = await client.time()
                now = str(int(seconds) * 1000 + int(micros) // 1000)
            return _block(key, state, failures, int(now or 0))

        return await self._guarded_async(call, lambda: self._status_fallback(key))

    def unblock(self, key: str) -> bool:
        """Lift ``key``'s block and forget its failures; ``False`` if it had none."""

        def call() -> bool:
            blocked = self.status(key).blocked
            self._client.delete(*self._keys(key))
            return blocked

        local = self._local
        return self._guarded(call, lambda: local.lockouts.unblock(key) if local else False)

    def blocks(self) -> list[Block]:
        """Every key blocked now, soonest to end first (scans the keyspace: admin use)."""

        def call() -> list[Block]:
            pattern = f"{self._prefix}lockout:*:block"
            start = len(self._prefix) + len("lockout:")
            live = []
            for raw in self._client.scan_iter(match=pattern, count=1000):
                # surrogatepass: a key that was not valid text comes back as it was given
                name = raw.decode("utf-8", "surrogatepass") if isinstance(raw, bytes) else raw
                key = name[start : -len(":block")]
                if key.startswith("{") and key.endswith("}") and key.count("{") == 1:
                    key = key[1:-1]
                block = self.status(key)
                if block.blocked:
                    live.append(block)
            return sorted(live, key=lambda block: block.until_ns)

        local = self._local
        return self._guarded(call, lambda: local.lockouts.blocks() if local else [])

    def clear(self) -> None:
        """Nothing to do: entries expire by themselves (``FLUSHDB`` forgets them)."""


def _block(key: str, state: Any, failures: Any, now_ms: int) -> Block:
    """A :class:`Block` from the stored ``"until streak last_block_end"``."""
    if not state:
        return Block(key, 0, int(failures), 0)
    until, streak, _ = (int(float(word)) for word in state.split())
    return Block(key, until * NS_PER_MS if until > now_ms else 0, int(failures), streak)


def _server_now_ms(client: Any) -> str:
    seconds, micros = client.time()
    return str(int(seconds) * 1000 + int(micros) // 1000)

"""Concurrency leases and lockouts kept in Redis, shared by every process.

Same contract as the memory store's :class:`~ratekeeper.stores.LeaseTable` and
:class:`~ratekeeper.stores.LockoutTable` (the contract vectors run on both):
each operation that changes state is one script (``lua/lease_*.lua``,
``lua/lockout_failure.lua``), so concurrent workers never race. Reads are
plain commands.

Keys: ``rk:lease:{key}`` (a sorted set of lease ids by expiry),
``rk:lockout:{key}:log`` (failure times) and ``rk:lockout:{key}:block``
(``"until streak last_block_end"``), the caller's key being the hash tag.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from importlib import resources
from typing import Any

from .leases import LeaseGrant
from .lockouts import Block, LockoutRule

__all__ = ["RedisLeases", "RedisLockouts", "tagged"]

_NS_PER_MS = 1_000_000


def script_text(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped with the package."""
    return resources.files("ratekeeper.stores").joinpath(f"lua/{name}.lua").read_text("utf-8")


def tagged(key: str) -> str:
    """``key`` with a Redis Cluster hash tag: its own ``{...}`` if it has one, else all of it."""
    start = key.find("{")
    if start >= 0 and key.find("}", start + 1) > start + 1:
        return key
    return "{" + key + "}"


class _Scripts:
    """Scripts registered on a sync client and, lazily, on an asyncio one."""

    def __init__(self, names: tuple[str, ...], client: Any, async_client: Callable[[], Any]):
        self._texts = {name: script_text(name) for name in names}
        self._sync = (
            {name: client.register_script(text) for name, text in self._texts.items()}
            if client is not None
            else {}
        )
        self._async_client = async_client
        self._async: dict[str, Any] = {}

    def sync(self, name: str) -> Any:
        return self._sync[name]

    def asynchronous(self, name: str) -> Any:
        script = self._async.get(name)
        if script is None:
            script = self._async[name] = self._async_client().register_script(self._texts[name])
        return script


class RedisLeases:
    """Concurrency leases in Redis: ``acquire`` / ``release`` / ``in_use``."""

    def __init__(
        self,
        client: Any,
        async_client: Callable[[], Any],
        prefix: str,
        now_ms: Callable[[], str],
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._prefix = prefix
        self._now_ms = now_ms
        self._scripts = _Scripts(("lease_acquire", "lease_release"), client, async_client)

    def _key(self, key: str) -> str:
        return f"{self._prefix}lease:{tagged(key)}"

    def _acquire_args(self, limit: int, ttl: float) -> list[Any]:
        if limit < 1:
            raise ValueError(f"concurrency limit must be at least 1, got {limit}")
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        return [limit, max(1, round(ttl * 1000)), secrets.token_hex(8), self._now_ms()]

    def acquire(self, key: str, limit: int, ttl: float) -> LeaseGrant:
        """Take one of ``limit`` slots of ``key`` for at most ``ttl`` seconds."""
        args = self._acquire_args(limit, ttl)
        granted, held = self._scripts.sync("lease_acquire")(keys=[self._key(key)], args=args)
        return LeaseGrant(args[2] if granted == 1 else None, limit, int(held))

    async def acquire_async(self, key: str, limit: int, ttl: float) -> LeaseGrant:
        args = self._acquire_args(limit, ttl)
        script = self._scripts.asynchronous("lease_acquire")
        granted, held = await script(keys=[self._key(key)], args=args)
        return LeaseGrant(args[2] if granted == 1 else None, limit, int(held))

    def release(self, key: str, lease_id: str) -> bool:
        """Give a slot back; ``False`` when the lease had expired or was unknown."""
        script = self._scripts.sync("lease_release")
        return bool(script(keys=[self._key(key)], args=[lease_id, self._now_ms()]) == 1)

    async def release_async(self, key: str, lease_id: str) -> bool:
        script = self._scripts.asynchronous("lease_release")
        return bool(await script(keys=[self._key(key)], args=[lease_id, self._now_ms()]) == 1)

    def in_use(self, key: str) -> int:
        """Live leases of ``key`` now."""
        now = self._now_ms() or _server_now_ms(self._client)
        return int(self._client.zcount(self._key(key), f"({now}", "+inf"))

    def clear(self) -> None:
        """Nothing to do: leases expire by themselves (``FLUSHDB`` forgets them)."""


class RedisLockouts:
    """Failure counters and blocks in Redis."""

    def __init__(
        self,
        client: Any,
        async_client: Callable[[], Any],
        prefix: str,
        now_ms: Callable[[], str],
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._prefix = prefix
        self._now_ms = now_ms
        self._scripts = _Scripts(("lockout_failure",), client, async_client)

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}lockout:{tagged(key)}"
        return [base + ":log", base + ":block"]

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

    def record_failure(self, key: str, rule: LockoutRule) -> Block:
        """Count one failure of ``key``; block it when this reaches the threshold."""
        script = self._scripts.sync("lockout_failure")
        until, failures, streak = script(keys=self._keys(key), args=self._args(rule))
        return Block(key, int(until) * _NS_PER_MS, int(failures), int(streak))

    async def record_failure_async(self, key: str, rule: LockoutRule) -> Block:
        script = self._scripts.asynchronous("lockout_failure")
        until, failures, streak = await script(keys=self._keys(key), args=self._args(rule))
        return Block(key, int(until) * _NS_PER_MS, int(failures), int(streak))

    def status(self, key: str) -> Block:
        """Whether ``key`` is blocked now, and its recent failures."""
        log, block = self._keys(key)
        state = self._client.get(block)
        failures = self._client.llen(log)
        now = self._now_ms() or _server_now_ms(self._client) if state else "0"
        return _block(key, state, failures, int(now))

    async def status_async(self, key: str) -> Block:
        log, block = self._keys(key)
        client = self._async_client()
        state = await client.get(block)
        failures = await client.llen(log)
        now = self._now_ms()
        if state and not now:
            seconds, micros = await client.time()
            now = str(int(seconds) * 1000 + int(micros) // 1000)
        return _block(key, state, failures, int(now or 0))

    def unblock(self, key: str) -> bool:
        """Lift ``key``'s block and forget its failures; ``False`` if it had none."""
        blocked = self.status(key).blocked
        self._client.delete(*self._keys(key))
        return blocked

    def blocks(self) -> list[Block]:
        """Every key blocked now, soonest to end first (scans the keyspace: admin use)."""
        pattern = f"{self._prefix}lockout:*:block"
        start = len(self._prefix) + len("lockout:")
        live = []
        for raw in self._client.scan_iter(match=pattern, count=1000):
            name = raw.decode() if isinstance(raw, bytes) else raw
            key = name[start : -len(":block")]
            if key.startswith("{") and key.endswith("}") and key.count("{") == 1:
                key = key[1:-1]
            block = self.status(key)
            if block.blocked:
                live.append(block)
        return sorted(live, key=lambda block: block.until_ns)

    def clear(self) -> None:
        """Nothing to do: entries expire by themselves (``FLUSHDB`` forgets them)."""


def _block(key: str, state: Any, failures: Any, now_ms: int) -> Block:
    """A :class:`Block` from the stored ``"until streak last_block_end"``."""
    if not state:
        return Block(key, 0, int(failures), 0)
    until, streak, _ = (int(float(word)) for word in state.split())
    return Block(key, until * _NS_PER_MS if until > now_ms else 0, int(failures), streak)


def _server_now_ms(client: Any) -> str:
    seconds, micros = client.time()
    return str(int(seconds) * 1000 + int(micros) // 1000)

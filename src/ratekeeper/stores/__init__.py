"""Where counters live: the Store protocol and its implementations."""

from __future__ import annotations

from .base import Charge, ChargeResult, LimitSpec, Store, StoreUnavailableError
from .leases import LeaseGrant, LeaseTable
from .lockouts import Block, LockoutRule, LockoutTable
from .memory import MemoryStats, MemoryStore
from .redis import RedisStore

__all__ = [
    "Block",
    "Charge",
    "ChargeResult",
    "LeaseGrant",
    "LeaseTable",
    "LimitSpec",
    "LockoutRule",
    "LockoutTable",
    "MemoryStats",
    "MemoryStore",
    "RedisStore",
    "Store",
    "StoreUnavailableError",
]

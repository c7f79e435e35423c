"""Where counters live: the Store protocol and its implementations."""

from __future__ import annotations

from .base import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    Charge,
    ChargeResult,
    LeaseAsk,
    LimitSpec,
    Step,
    StepResult,
    Store,
    StoreUnavailableError,
)
from .leases import LeaseGrant, LeaseTable
from .lockouts import Block, LockoutRule, LockoutTable
from .memory import MemoryStats, MemoryStore
from .redis import RedisStore, key_slot, key_tag

__all__ = [
    "ADMITTED",
    "BLOCKED",
    "REFUSED_BY_CAP",
    "REFUSED_BY_RATE",
    "Block",
    "Charge",
    "ChargeResult",
    "LeaseAsk",
    "LeaseGrant",
    "LeaseTable",
    "LimitSpec",
    "LockoutRule",
    "LockoutTable",
    "MemoryStats",
    "MemoryStore",
    "RedisStore",
    "Step",
    "StepResult",
    "Store",
    "StoreUnavailableError",
    "key_slot",
    "key_tag",
]

"""ratekeeper: API rate limiting as providers document it, and the client side.

The public surface, re-exported from the modules that define it::

    from ratekeeper import RateLimiter, MemoryStore
    rl = RateLimiter(MemoryStore())
    decision = rl.hit("user:1", "60/minute;1000/hour")
"""

from __future__ import annotations

from .algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from .decision import Decision, RateStatus
from .rate_limiter import AsyncRateLimiter, RateLimiter
from .rates import Rate, parse_rates
from .stores import Block, LeaseGrant, LockoutRule, MemoryStats, MemoryStore, Store

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "AsyncRateLimiter",
    "Block",
    "Decision",
    "LeaseGrant",
    "LockoutRule",
    "MemoryStats",
    "MemoryStore",
    "Rate",
    "RateLimiter",
    "RateStatus",
    "Store",
    "parse_rates",
]

__version__ = "0.1.0"

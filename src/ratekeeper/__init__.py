"""ratekeeper: API rate limiting as providers document it, and the client side.

The public surface, re-exported from the modules that define it::

    from ratekeeper import RateLimiter, MemoryStore
    rl = RateLimiter(MemoryStore())
    decision = rl.hit("user:1", "60/minute;1000/hour")

    from ratekeeper import Limiter, load_policy
    limiter = Limiter(load_policy("examples/scanner.yaml"))
    decision = limiter.check(method="POST", path="/api/scans",
                             headers={"X-API-Key": "demo-free"}, client_ip="203.0.113.7")

    from ratekeeper import limit            # per-route limits: FastAPI Depends, view decorator
    @app.get("/search", dependencies=[Depends(limit("10/minute", key="ip"))])

The middleware lives in ``ratekeeper.integrations.asgi`` and ``.wsgi``.
"""

from __future__ import annotations

import typing

from .algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from .engine import AsyncRateLimiter, Decision, RateLimiter, RateStatus
from .limiter import AsyncLimiter, Limiter, PolicyDecision
from .policy import Policy, PolicyError, load_policy
from .rates import Rate, parse_rates
from .stores import (
    Block,
    LeaseGrant,
    LockoutRule,
    MemoryStats,
    MemoryStore,
    RedisStore,
    Store,
    StoreUnavailableError,
)

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "AsyncLimiter",
    "AsyncRateLimiter",
    "Block",
    "Decision",
    "LeaseGrant",
    "Limiter",
    "LockoutRule",
    "MemoryStats",
    "MemoryStore",
    "Policy",
    "PolicyDecision",
    "PolicyError",
    "Rate",
    "RateLimiter",
    "RateStatus",
    "RedisStore",
    "Store",
    "StoreUnavailableError",
    "limit",
    "load_policy",
    "parse_rates",
]

if typing.TYPE_CHECKING:
    from .integrations.routes import limit

#: names imported on first use, so that ``import ratekeeper`` stays light
_LAZY = {"limit": "ratekeeper.integrations.routes"}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ratekeeper' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

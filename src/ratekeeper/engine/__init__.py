"""The decision engine: from a request or a key to a decision, written once.

Private modules, each with its own ``__all__``, re-exported here:

``_decisions``   what a decision says: :class:`Decision`, :class:`PolicyDecision`
``_charging``    a category and a caller to the charges a store applies
``_refusals``    counters known to be over their limit (one cache)
``_events``      what happened at each decision, told to hooks (metrics, analytics)
``_lanes``       requests decided by their route and client IP alone
``_leases``      the concurrency slots a decision holds, as an opaque handle (and token)
``_flow``        the decision flow, I/O-free: route, identify, plan, refusals, step, answer
``_stepping``    its runners: a flow's steps performed by a store, sync or async
``_limiter``     the policy-driven :class:`Limiter` and :class:`AsyncLimiter`: thin runners
``_rate_limiter`` the keyed :class:`RateLimiter` and :class:`AsyncRateLimiter`
``_usage``       one key's counters by its id: read without consuming, or reset (admin API)
"""

from __future__ import annotations

from ._charging import BadRequestError, ChargePlan, Charger
from ._decisions import (
    ADMITTED,
    BAD_REQUEST,
    BLOCKED,
    EXEMPT,
    LIMITED,
    OVER_CAP,
    UNAUTHORIZED,
    UNAVAILABLE,
    Answers,
    AnswersFactory,
    Decision,
    PolicyDecision,
    RateStatus,
    RawHeaders,
    build_decision,
    tightest,
)
from ._events import BlockEvent, BlockHook, DecisionEvent, DecisionHook, fan_out
from ._flow import LimiterCore, Prepared
from ._lanes import Lane
from ._leases import Lease, LeaseSeal
from ._limiter import AsyncLimiter, Limiter
from ._overrides import Override
from ._rate_limiter import AsyncRateLimiter, RateLimiter, RatesLike
from ._refusals import RefusalCache
from ._stepping import never_waits, one_slot, run, run_async, stepper, stepper_async
from ._usage import KeyCounters, LimitUsage

__all__ = [
    "ADMITTED",
    "BAD_REQUEST",
    "BLOCKED",
    "EXEMPT",
    "LIMITED",
    "OVER_CAP",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "Answers",
    "AnswersFactory",
    "AsyncLimiter",
    "AsyncRateLimiter",
    "BadRequestError",
    "BlockEvent",
    "BlockHook",
    "ChargePlan",
    "Charger",
    "Decision",
    "DecisionEvent",
    "DecisionHook",
    "KeyCounters",
    "Lane",
    "Lease",
    "LeaseSeal",
    "LimitUsage",
    "Limiter",
    "LimiterCore",
    "Override",
    "PolicyDecision",
    "Prepared",
    "RateLimiter",
    "RateStatus",
    "RatesLike",
    "RawHeaders",
    "RefusalCache",
    "build_decision",
    "fan_out",
    "never_waits",
    "one_slot",
    "run",
    "run_async",
    "stepper",
    "stepper_async",
    "tightest",
]

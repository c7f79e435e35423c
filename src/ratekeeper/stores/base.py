"""The Store protocol: where counters live, and the one atomic step on them.

A decision is a batch of charges applied in one atomic step (all-or-nothing):
every charge is evaluated; if any enforced charge is denied nothing is
consumed; otherwise every charge that had room is consumed. A *shadow* charge
(a dry-run limit) is decided and reported but never denies; when the request
is admitted it is consumed only if it had room, exactly as it would be if it
were enforced, so its counts show what enforcing it would do.

Charges and results are plain tuples, built once per decision, to keep the hot
path free of objects::

    charge = (spec, key, cost, shadow)
    result = (allowed, remaining, reset_at_ns, retry_after_ns)

``remaining`` is what is left after the decision (after consumption when the
batch was admitted). ``apply`` returns ``(admitted, results)``.

A policy decision asks more: blocks to look at, concurrency slots to take, a
penalty to count. ``decide`` takes all of it as one :class:`Step` and answers
a :class:`StepResult`, in one atomic step too (one lock in memory, one script
call in Redis): before, that was a store call per block, per cap, for the
charges, for the penalty and per slot given back, none atomic with the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..algorithms import Algorithm, Evaluation, check_rate
from ..rates import Rate
from .leases import LeaseGrant
from .lockouts import Block, LockoutRule

__all__ = [
    "ADMITTED",
    "BLOCKED",
    "REFUSED_BY_CAP",
    "REFUSED_BY_RATE",
    "Charge",
    "ChargeResult",
    "LeaseAsk",
    "LeaseOps",
    "LimitSpec",
    "LockoutOps",
    "Step",
    "StepResult",
    "Store",
    "StoreUnavailableError",
]


class StoreUnavailableError(Exception):
    """The store could not decide (unreachable, timed out) and is set to fail closed.

    The limiters catch it: ``RateLimiter`` answers a refusal with
    ``retry_after`` 1 s, ``Limiter`` the policy's ``unavailable`` response (503).
    """


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One rate under one algorithm, ready for the stores.

    ``slot`` names the counter family: every key limited by the same algorithm
    over the same window (and, for state that depends on it, the same limit)
    shares the slot, so a plan that changes a sliding window's limit from 60 to
    300 per minute keeps the key's count.

    A rate past what ``algorithm`` counts exactly on every store (a window
    over 365 days, a limit over ``algorithm.max_limit``: algorithms/bounds.py)
    is a ``ValueError`` here, where every limiter builds its specs, rather
    than a wrong count in Redis later.
    """

    algorithm: Algorithm
    limit: int
    window_ns: int
    capacity: int
    slot: str = field(default="")
    #: ``algorithm.evaluate``, bound once: the stores call it on every decision
    evaluate: Callable[..., Evaluation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_rate(self.algorithm, self.limit, self.window_ns, self.capacity)
        object.__setattr__(self, "evaluate", self.algorithm.evaluate)

    @classmethod
    def of(cls, algorithm: Algorithm, rate: Rate) -> LimitSpec:
        slot = f"{algorithm.name}:{rate.window_ns}"
        if algorithm.state_depends_on_limit:
            slot = f"{slot}:{rate.limit}:{rate.capacity}"
        return cls(algorithm, rate.limit, rate.window_ns, rate.capacity, slot)


Charge = tuple[LimitSpec, str, int, bool]
ChargeResult = tuple[bool, int, int, int]


class LeaseOps(Protocol):
    """Concurrency leases: take one of ``limit`` slots, give it back."""

    def acquire(self, key: str, limit: int, ttl: float) -> LeaseGrant: ...

    async def acquire_async(self, key: str, limit: int, ttl: float) -> LeaseGrant: ...

    async def release_async(self, key: str, lease_id: str) -> bool: ...

    def release(self, key: str, lease_id: str) -> bool: ...

    def in_use(self, key: str) -> int: ...


class LockoutOps(Protocol):
    """Failure counters that turn into temporary blocks."""

    def record_failure(self, key: str, rule: LockoutRule) -> Block: ...

    async def record_failure_async(self, key: str, rule: LockoutRule) -> Block: ...

    async def status_async(self, key: str) -> Block: ...

    def status(self, key: str) -> Block: ...

    def unblock(self, key: str) -> bool: ...

    def blocks(self) -> list[Block]: ...


# One decision's whole plan, decided by a store in one atomic step (issue 11).

#: ``(lease key, cap, ttl_ns)``: one slot of a concurrency cap to take
LeaseAsk = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class Step:
    """Everything one decision asks of the store, decided all or nothing.

    In order, under one lock (memory) or in one script call (Redis):

    1. ``blocks``: lockout and penalty block keys (the keys ``LockoutOps``
       takes); the first one blocked now answers the step and nothing else is
       read or written: no lease, no charge, no failure recorded.
    2. ``leases``: one slot of each concurrency cap, in order; the first cap
       that is full answers the step, and the slots taken before it are given
       back (nothing is charged). A key asked twice takes two slots.
    3. ``charges``: every rate, as ``Store.apply`` decides them (all or none;
       shadow charges never refuse).
    4. ``penalty``: when a rate refused the request, one failure recorded on
       this ``(key, rule)`` (the penalty for hammering while limited); the
       leases taken in 2 are given back.

    ``consume=False`` (a peek) answers what the step would answer now (a
    block, a full cap, a rate) but takes no lease, charges nothing and records
    no failure. ``peeks`` names charges (by index) peeked inside a step that
    takes: each is decided as any charge is (an enforced one refuses the
    whole step when its cost would not fit) but is never consumed (Envoy's
    ``hits_addend: 0`` on one descriptor of a request: a check, not a hit).
    A refused step leaves no lease held and no rate consumed.

    What a step writes is what ``LeaseOps`` and ``LockoutOps`` read and write
    (same keys, same state): ``leases.release`` gives back a slot a step took,
    ``lockouts.status``, ``unblock`` and ``blocks()`` see a block a penalty
    started. A cap below 1 or a lease ttl that is not positive is a
    ``ValueError``, and so, on a store that is ``one_slot`` (Redis Cluster),
    are keys of one step on two slots (the error names them).
    """

    charges: Sequence[Charge]
    blocks: tuple[str, ...] = ()
    leases: tuple[LeaseAsk, ...] = ()
    penalty: tuple[str, LockoutRule] | None = None
    consume: bool = True
    peeks: frozenset[int] = frozenset()


#: what ended a step
ADMITTED, REFUSED_BY_RATE, REFUSED_BY_CAP, BLOCKED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class StepResult:
    """What the store decided for a :class:`Step`, as plain data.

    ``outcome`` is one of ``ADMITTED``, ``REFUSED_BY_RATE``, ``REFUSED_BY_CAP``,
    ``BLOCKED``; ``index`` names the block (``BLOCKED``) or cap
    (``REFUSED_BY_CAP``) that refused, else -1. ``block`` is that block's state
    (``BLOCKED``) or the penalty key's block after this refusal's failure
    (``REFUSED_BY_RATE`` with a penalty that reached its threshold, or whose
    key was blocked already but not among ``blocks``), else ``None``. ``results`` has
    one entry per charge when the charges were decided (``ADMITTED``,
    ``REFUSED_BY_RATE``), else is empty. ``leases`` are ``(lease key, lease
    id)`` held after an admitted step, in the order asked. ``now_ns`` is the
    store's clock at the step: answers are rendered from it.
    """

    outcome: int
    results: list[ChargeResult]
    now_ns: int
    index: int = -1
    block: Block | None = None
    leases: tuple[tuple[str, str], ...] = ()

    @property
    def admitted(self) -> bool:
        return self.outcome == ADMITTED


@runtime_checkable
class Store(Protocol):
    """Counters for many keys, changed only through ``apply`` and ``decide``; leases; lockouts.

    A store says what it can do rather than being recognised by its type:
    ``never_waits`` (its async faces only call its sync ones: an async caller
    may call the sync ones directly) and ``one_slot`` (every key of one step
    must share a Redis Cluster hash tag: ``RedisStore.slot_of`` and
    ``stores.redis.keys.key_tag`` tell where a key lands).
    """

    @property
    def leases(self) -> LeaseOps:
        """Concurrency leases kept by this store."""
        ...

    @property
    def lockouts(self) -> LockoutOps:
        """Lockout counters and blocks kept by this store."""
        ...

    @property
    def never_waits(self) -> bool:
        """No call waits on I/O: the async faces only call the sync ones (memory)."""
        ...

    @property
    def one_slot(self) -> bool:
        """The keys of one step must share one Cluster slot (Redis Cluster), else ValueError."""
        ...

    def apply(
        self, charges: Sequence[Charge], consume: bool = True
    ) -> tuple[bool, list[ChargeResult]]:
        """Decide every charge and consume all or none (nothing when ``consume`` is false)."""
        ...

    async def apply_async(
        self, charges: Sequence[Charge], consume: bool = True
    ) -> tuple[bool, list[ChargeResult]]:
        """``apply`` for asyncio callers."""
        ...

    def decide(self, step: Step) -> StepResult:
        """One decision's blocks, leases, rates and penalty in one atomic step (:class:`Step`).

        One lock (memory), one script call (Redis), whatever the step holds.
        """
        ...

    async def decide_async(self, step: Step) -> StepResult:
        """``decide`` for asyncio callers."""
        ...

    @property
    def generation(self) -> int:
        """Changes whenever the store forgets its counters (``clear``)."""
        ...

    @property
    def degraded(self) -> bool:
        """True while answers come from a fallback (the store is failing open or local)."""
        ...

    def now_ns(self) -> int:
        """The store's clock, in integer nanoseconds since the epoch."""
        ...

"""The decisions as the limiter made them before stores had one step: the reference.

Before issue 11 the limiter performed a decision with a store's separate calls:
``lockouts.status`` per block, ``leases.acquire`` per cap, ``apply``, then
``lockouts.record_failure`` for the penalty, giving leases back on a refusal.
:func:`decide_in_calls` performs a :class:`Step` exactly that way; tests hold
every store's own ``decide`` to it, so the one atomic step answers as the
calls did.
"""

from __future__ import annotations

import contextlib

from ratekeeper.rates import NS_PER_SECOND
from ratekeeper.stores.base import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    Step,
    StepResult,
    Store,
    StoreUnavailableError,
)
from ratekeeper.stores.lockouts import Block

__all__ = ["decide_in_calls"]


def decide_in_calls(store: Store, step: Step) -> StepResult:
    """Perform ``step`` with the store's separate calls, in the order a step decides.

    Blocks (``lockouts.status``), then leases (``leases.acquire``), then the
    charges (``apply``; none for a step of blocks alone), then the
    penalty (``lockouts.record_failure``); the leases taken are given back when
    the step is refused or the store fails (``StoreUnavailableError`` is
    raised again). ``now_ns`` is the store's clock once the step is done.
    """
    lockouts = store.lockouts
    for index, key in enumerate(step.blocks):
        block = lockouts.status(key)
        if block.blocked:
            return StepResult(BLOCKED, [], store.now_ns(), index, block)
    taken: list[tuple[str, str]] = []
    try:
        if step.consume and step.leases:
            leases = store.leases
            for index, (key, cap, ttl_ns) in enumerate(step.leases):
                lease_id = leases.acquire(key, cap, ttl_ns / NS_PER_SECOND).lease_id
                if lease_id is None:
                    _release(store, taken)
                    return StepResult(REFUSED_BY_CAP, [], store.now_ns(), index)
                taken.append((key, lease_id))
        if step.charges:
            admitted, results = store.apply(step.charges, step.consume)
        else:  # a step of blocks alone
            admitted, results = True, []
        if not admitted:
            _release(store, taken)
            started: Block | None = None
            if step.penalty is not None and step.consume:
                found = lockouts.record_failure(*step.penalty)
                started = found if found.blocked else None
            return StepResult(REFUSED_BY_RATE, results, store.now_ns(), block=started)
    except StoreUnavailableError:
        _release(store, taken)
        raise
    return StepResult(ADMITTED, results, store.now_ns(), leases=tuple(taken))


def _release(store: Store, taken: list[tuple[str, str]]) -> None:
    release = store.leases.release
    for key, lease_id in taken:
        with contextlib.suppress(StoreUnavailableError):  # else it ends with its ttl
            release(key, lease_id)

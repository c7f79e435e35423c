"""The runners: a decision flow's store steps, performed by a store, sync or async.

A flow (:meth:`ratekeeper.engine._flow.LimiterCore.flow`) is a generator: it
yields the :class:`~ratekeeper.stores.base.Step` it needs, receives the
:class:`~ratekeeper.stores.base.StepResult`, and returns the decision; a
store that cannot decide is thrown into it as ``StoreUnavailableError``. It
does no I/O, so one flow serves both faces, driven by :func:`run` or
:func:`run_async` (as httpx drives its ``auth_flow``).

A step is performed by the store's own ``decide`` (one atomic step: one lock,
one script call), or, for a store that has none yet, by
:func:`decide_in_calls`: the temporary adapter that performs it with the
calls the limiter made before steps existed, in the same order (blocks, then
leases, then the charges, then the penalty; leases given back on a refusal).
It goes once every store has ``decide`` (issue 11, the stores' item).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

from ..rates import NS_PER_SECOND
from ..stores.base import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    Step,
    StepResult,
    Store,
    StoreUnavailableError,
)
from ..stores.lockouts import Block
from ..stores.memory import MemoryStore

__all__ = [
    "decide_in_calls",
    "decide_in_calls_async",
    "never_waits",
    "one_slot",
    "run",
    "run_async",
    "stepper",
    "stepper_async",
]

D = TypeVar("D")
Flow = Generator[Step, StepResult, D]


def run(flow: Flow[D], decide: Callable[[Step], StepResult]) -> D:
    """Drive ``flow`` to its decision, performing each step with ``decide`` (:func:`stepper`)."""
    try:
        step = next(flow)
        while True:
            try:
                result = decide(step)
            except StoreUnavailableError as error:
                step = flow.throw(error)
            else:
                step = flow.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def run_async(flow: Flow[D], decide: Callable[[Step], Awaitable[StepResult]]) -> D:
    """:func:`run` for asyncio callers: each step is awaited (:func:`stepper_async`)."""
    try:
        step = next(flow)
        while True:
            try:
                result = await decide(step)
            except StoreUnavailableError as error:
                step = flow.throw(error)
            else:
                step = flow.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def stepper(store: Store) -> Callable[[Step], StepResult]:
    """What performs a step on ``store``: its own ``decide``, else the adapter.

    Found once, when a limiter is built: looking for a missing attribute on
    every request costs more than the rest of the dispatch.
    """
    own: Callable[[Step], StepResult] | None = getattr(store, "decide", None)
    if own is not None:
        return own
    return functools.partial(decide_in_calls, store)


def stepper_async(store: Store) -> Callable[[Step], Awaitable[StepResult]]:
    """:func:`stepper` for asyncio callers: ``decide_async``, else the async adapter."""
    own: Callable[[Step], Awaitable[StepResult]] | None = getattr(store, "decide_async", None)
    if own is not None:
        return own
    return functools.partial(decide_in_calls_async, store)


def never_waits(store: Store) -> bool:
    """Whether ``store``'s steps never wait on I/O, so the async faces may call its sync ones.

    A declared capability (``store.never_waits``). Until the stores declare it,
    the memory store is known by its async single-charge step being its own
    class's (which only calls the sync one); a subclass with its own async
    step could wait.
    """
    declared = getattr(store, "never_waits", None)
    if declared is not None:
        return bool(declared)
    return type(store).apply_one_async is MemoryStore.apply_one_async


def one_slot(store: Store) -> bool:
    """Whether every key of one decision must be on one slot (Redis Cluster): declared."""
    return bool(getattr(store, "one_slot", False))


# The adapter: a Step in the calls stores offer today. Temporary (module docstring).


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


async def decide_in_calls_async(store: Store, step: Step) -> StepResult:
    """:func:`decide_in_calls` for asyncio callers."""
    lockouts = store.lockouts
    for index, key in enumerate(step.blocks):
        block = await lockouts.status_async(key)
        if block.blocked:
            return StepResult(BLOCKED, [], store.now_ns(), index, block)
    taken: list[tuple[str, str]] = []
    try:
        if step.consume and step.leases:
            leases = store.leases
            for index, (key, cap, ttl_ns) in enumerate(step.leases):
                lease_id = (await leases.acquire_async(key, cap, ttl_ns / NS_PER_SECOND)).lease_id
                if lease_id is None:
                    await _release_async(store, taken)
                    return StepResult(REFUSED_BY_CAP, [], store.now_ns(), index)
                taken.append((key, lease_id))
        if step.charges:
            admitted, results = await store.apply_async(step.charges, step.consume)
        else:  # a step of blocks alone
            admitted, results = True, []
        if not admitted:
            await _release_async(store, taken)
            started: Block | None = None
            if step.penalty is not None and step.consume:
                found = await lockouts.record_failure_async(*step.penalty)
                started = found if found.blocked else None
            return StepResult(REFUSED_BY_RATE, results, store.now_ns(), block=started)
    except StoreUnavailableError:
        await _release_async(store, taken)
        raise
    return StepResult(ADMITTED, results, store.now_ns(), leases=tuple(taken))


def _release(store: Store, taken: list[tuple[str, str]]) -> None:
    release = store.leases.release
    for key, lease_id in taken:
        with contextlib.suppress(StoreUnavailableError):  # else it ends with its ttl
            release(key, lease_id)


async def _release_async(store: Store, taken: list[tuple[str, str]]) -> None:
    release = store.leases.release_async
    for key, lease_id in taken:
        with contextlib.suppress(StoreUnavailableError):  # else it ends with its ttl
            await release(key, lease_id)

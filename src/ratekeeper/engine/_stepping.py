"""The runners: a decision flow's store steps, performed by a store, sync or async.

A flow (:meth:`ratekeeper.engine._flow.LimiterCore.flow`) is a generator: it
yields the :class:`~ratekeeper.stores.base.Step` it needs, receives the
:class:`~ratekeeper.stores.base.StepResult`, and returns the decision; a
store that cannot decide is thrown into it as ``StoreUnavailableError``. It
does no I/O, so one flow serves both faces, driven by :func:`run` or
:func:`run_async` (as httpx drives its ``auth_flow``).

A step is performed by the store's own ``decide`` (one atomic step: one lock,
one script call: ``Store.decide``). Tests hold it to the calls the limiter made
before steps existed (``tests/support/calls_step.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

from ..stores.base import (
    ChargeResult,
    LimitSpec,
    Step,
    StepResult,
    Store,
    StoreUnavailableError,
)

__all__ = [
    "never_waits",
    "one_charge",
    "one_charge_async",
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
    """What performs a step on ``store``: its own ``decide``, found once per limiter."""
    return store.decide


def stepper_async(store: Store) -> Callable[[Step], Awaitable[StepResult]]:
    """:func:`stepper` for asyncio callers: the store's ``decide_async``."""
    return store.decide_async


OneCharge = Callable[[LimitSpec, str, int], ChargeResult]


def one_charge(store: Store) -> OneCharge:
    """How one enforced charge reaches ``store``: its private lean path, else ``apply``.

    ``apply_one`` is no duty of a store (it is not in the ``Store`` protocol): the
    memory and Redis stores offer it as their fast path for the commonest
    request, and any other store is asked through ``apply``. Found once, when a
    limiter is built.
    """
    own: OneCharge | None = getattr(store, "apply_one", None)
    if own is not None:
        return own

    def through_apply(spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        return store.apply([(spec, key, cost, False)])[1][0]

    return through_apply


def one_charge_async(store: Store) -> Callable[[LimitSpec, str, int], Awaitable[ChargeResult]]:
    """:func:`one_charge` for asyncio callers: ``apply_one_async``, else ``apply_async``."""
    own: Callable[[LimitSpec, str, int], Awaitable[ChargeResult]] | None = getattr(
        store, "apply_one_async", None
    )
    if own is not None:
        return own

    async def through_apply(spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        return (await store.apply_async([(spec, key, cost, False)]))[1][0]

    return through_apply


def never_waits(store: Store) -> bool:
    """Whether ``store``'s steps never wait on I/O, so the async faces may call its sync ones.

    A declared capability (``Store.never_waits``): the memory store's calls only
    take a lock, a Redis store's go over the network.
    """
    return bool(store.never_waits)


def one_slot(store: Store) -> bool:
    """Whether every key of one decision must be on one slot (Redis Cluster): declared."""
    return bool(store.one_slot)

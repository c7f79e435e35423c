"""The two runners of :func:`~ratekeeper.client._core.retry_flow`: sync and async.

A runner does what the flow yields and nothing else: send (through the
face's own ``send``), sleep (the injected ``sleep``), wait on a gate (a
``threading.Event`` or an ``asyncio.Event`` woken across threads), and read
the injected clocks. A response that will be retried is read and closed
before the wait, so its connection goes back to the pool; the one delivered
or given up on is returned or put in the :class:`RetryError`. A flow left by
an exception (a network error, a cancel) is closed, which gives a pacing
ticket back. The sync runner serves the httpx ``RetryTransport`` and the
requests ``RetryAdapter``; the async one ``AsyncRetryTransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ratekeeper.client._core import (
    Action,
    Answer,
    AwaitGate,
    GiveUp,
    Reply,
    RetryError,
    Send,
    Sleep,
    Verdict,
)

__all__ = ["AsyncFace", "Clocks", "Face", "run", "run_async"]

R = TypeVar("R")
Flow = Generator[Action, Reply, tuple[Verdict, int, float]]
#: a waiter on a gate looks again this often, should the probe outlive it
GATE_RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Clocks:
    """The injected time: the monotonic clock, the wall clock (epoch s), and the sleeps."""

    now: Callable[[], float]
    wall: Callable[[], float]
    sleep: Callable[[float], object]
    async_sleep: Callable[[float], Awaitable[object]]

    def reply(self, answer: Answer | None = None) -> Reply:
        return Reply(self.now(), self.wall(), answer)


@dataclass(frozen=True, slots=True)
class Face(Generic[R]):
    """How a sync face sends a request, reads its answer and discards a retried response."""

    send: Callable[[], R]
    answer: Callable[[R], Answer]
    discard: Callable[[R], None]  # read and close: it is being retried
    keep: Callable[[R], None]  # read it: it goes into a RetryError


@dataclass(frozen=True, slots=True)
class AsyncFace(Generic[R]):
    send: Callable[[], Awaitable[R]]
    answer: Callable[[R], Answer]
    discard: Callable[[R], Awaitable[None]]
    keep: Callable[[R], Awaitable[None]]


def _give_up(verdict: GiveUp, response: object, attempts: int, waited: float) -> RetryError:
    return RetryError(
        f"gave up after {attempts} attempt(s) and {waited:.3f} s waited: {verdict.why}",
        response=response,
        attempts=attempts,
        waited=waited,
    )


def run(flow: Flow, face: Face[R], clocks: Clocks) -> R:
    """Drive ``flow`` with blocking I/O; the response to deliver, or :class:`RetryError`."""
    response: R | None = None
    try:
        action = next(flow)
        while True:
            if isinstance(action, Send):
                response = face.send()
                action = flow.send(clocks.reply(face.answer(response)))
                continue
            if response is not None:  # a wait: the last answer is being retried
                face.discard(response)
                response = None
            if isinstance(action, Sleep):
                clocks.sleep(max(0.0, action.seconds))
            elif isinstance(action, AwaitGate):
                opened = threading.Event()
                action.gate.subscribe(opened.set)
                opened.wait(GATE_RECHECK_SECONDS)
            action = flow.send(clocks.reply())
    except StopIteration as stop:
        verdict, attempts, waited = stop.value
    finally:
        flow.close()
    assert response is not None  # the flow ends after an answer
    if isinstance(verdict, GiveUp):
        face.keep(response)
        raise _give_up(verdict, response, attempts, waited)
    return response


async def run_async(flow: Flow, face: AsyncFace[R], clocks: Clocks) -> R:
    """The twin of :func:`run` for asyncio."""
    response: R | None = None
    try:
        action = next(flow)
        while True:
            if isinstance(action, Send):
                response = await face.send()
                action = flow.send(clocks.reply(face.answer(response)))
                continue
            if response is not None:
                await face.discard(response)
                response = None
            if isinstance(action, Sleep):
                await clocks.async_sleep(max(0.0, action.seconds))
            elif isinstance(action, AwaitGate):
                await _gate(action)
            action = flow.send(clocks.reply())
    except StopIteration as stop:
        verdict, attempts, waited = stop.value
    finally:
        flow.close()
    assert response is not None
    if isinstance(verdict, GiveUp):
        await face.keep(response)
        raise _give_up(verdict, response, attempts, waited)
    return response


async def _gate(action: AwaitGate) -> None:
    loop = asyncio.get_running_loop()
    opened = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(opened.set)

    action.gate.subscribe(wake)
    with contextlib.suppress(TimeoutError):  # look again: the probe may still be out
        await asyncio.wait_for(opened.wait(), GATE_RECHECK_SECONDS)

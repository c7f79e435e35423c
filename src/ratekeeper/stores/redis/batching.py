"""Decisions that arrive together go to Redis together, as one script call.

Under load, many asyncio tasks ask for a decision in the same turn of the event
loop. Sending each on its own costs a round trip, a connection and a script
run each; instead, the first caller schedules a flush for the next turn and
every caller of this turn joins it: one ``EVALSHA`` of the decide script carrying
every decision, plain ones and whole steps alike (the script decides them in
order, each all-or-nothing, exactly as if they came one by one), one reply,
and each caller gets its own part of it. A caller that finds nothing on its
way to Redis goes at once, so a lone caller waits for nothing.

One command per batch also keeps redis-py's per-command costs (packing,
a timer per reply, a connection from the pool) per batch, not per decision.
Batches are for one server: on Cluster the store sends each decision alone.
:class:`ThreadBatcher` does the same for the sync face, between threads.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from .keys import RedisKey

__all__ = ["DecisionCall", "ScriptBatcher", "ThreadBatcher"]


class DecisionCall(Protocol):
    """One decision sent to the decide script, on its own or in a shared call.

    ``keys`` and ``numbers`` are the decision's (``KEYS`` and ``ARGV[2]`` of
    decide.lua), ``now`` the clock argument (``ARGV[1]``), ``words`` its
    strings (lease ids, escalation: ``ARGV[3..]``) and ``size`` the length of
    its answer (0: a plain decision's, ``1 + 4 * len(keys)``). The answer is
    ``[now_us, *the decision's own answer]``.
    """

    def __call__(
        self,
        keys: list[RedisKey],
        numbers: str,
        now: str,
        words: Sequence[str] = (),
        size: int = 0,
    ) -> Awaitable[Any]: ...


_MAX_BATCH = 128  # decisions per script call; a bigger wave is sent as several calls

#: one decision's part of a script call: its keys, numbers, words and answer length
_Call = tuple[list[RedisKey], str, Sequence[str], int]


def _joined(calls: list[_Call]) -> tuple[list[RedisKey], list[str]]:
    """The keys and ``ARGV[2:]`` of one script call deciding ``calls`` in order."""
    keys: list[RedisKey] = []
    words: list[str] = []
    for decision_keys, _, decision_words, _ in calls:
        keys += decision_keys
        words += decision_words
    return keys, [" ".join([call[1] for call in calls]), *words]


def _split(reply: list[Any], calls: list[_Call]) -> list[list[Any]]:
    """Each decision's answer, ``[now_us, *its own answer]``, from a batch's reply."""
    answers = []
    at = 1
    for _, _, _, size in calls:
        end = at + size
        answers.append([reply[0], *reply[at:end]])
        at = end
    return answers


class ScriptBatcher:
    """Runs decisions through shared calls of the decision script on an asyncio client."""

    def __init__(self, script: Any) -> None:
        self._script = script
        self._pending: list[tuple[_Call, asyncio.Future[Any]]] = []
        self._now = ""
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()  # held so they are not collected
        self._busy = 0  # calls on their way to Redis

    async def __call__(
        self,
        keys: list[RedisKey],
        numbers: str,
        now: str,
        words: Sequence[str] = (),
        size: int = 0,
    ) -> Any:
        """The script's answer for one decision (or the error the call raised)."""
        if not self._busy:  # nothing on the way: go now, no turn of the loop to wait
            self._busy += 1
            try:
                return await self._script(keys=keys, args=[now, numbers, *words])
            finally:
                self._busy -= 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(((keys, numbers, words, size or 1 + 4 * len(keys)), future))
        if not self._scheduled:
            self._scheduled = True
            self._now = now  # one clock per batch (only a test's fake clock is not "")
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), _MAX_BATCH):
            batch = pending[start : start + _MAX_BATCH]
            task = asyncio.ensure_future(self._send(batch, self._now))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[_Call, asyncio.Future[Any]]], now: str) -> None:
        calls = [call for call, _ in batch]
        keys, args = _joined(calls)
        self._busy += 1
        try:
            reply = await self._script(keys=keys, args=[now, *args])
        except Exception as error:  # the call failed: every decision of it gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            self._busy -= 1
        for (_, future), answer in zip(batch, _split(reply, calls), strict=True):
            if not future.done():  # its caller may have been cancelled meanwhile
                future.set_result(answer)


class _Waiter:
    """A thread's decision queued behind the call in flight."""

    __slots__ = ("batch", "call", "error", "event", "reply")

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.event = threading.Event()
        self.reply: Any = None
        self.error: BaseException | None = None
        self.batch: list[_Waiter] | None = None  # set when this thread is to send its batch


_THREAD_BATCHERS: weakref.WeakSet[ThreadBatcher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child has only the forking thread: no call of the parent is in flight."""
    for batcher in list(_THREAD_BATCHERS):
        batcher._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ThreadBatcher:
    """The sync face's twin of :class:`ScriptBatcher`: threads share script calls.

    One call is in flight at a time per store; a thread that arrives meanwhile
    queues. When the call returns, the thread that made it hands the queue (up
    to ``_MAX_BATCH``) to the first thread in it, which sends it as one call
    and then hands on the queue that formed meanwhile. So every thread sends
    at most one call and waits for at most one more ahead of it; a lone thread
    goes at once.
    """

    def __init__(self, script: Any) -> None:
        self._script = script
        self._reset()
        _THREAD_BATCHERS.add(self)

    def _reset(self) -> None:
        """Nothing in flight, nobody queued (also in a forked child: pre-fork servers)."""
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._sending = False

    def __call__(
        self,
        keys: list[RedisKey],
        numbers: str,
        now: str,
        words: Sequence[str] = (),
        size: int = 0,
    ) -> Any:
        """The script's answer for one decision (or the error the call raised)."""
        with self._lock:
            waiter = None
            if self._sending:
                waiter = _Waiter((keys, numbers, words, size or 1 + 4 * len(keys)))
                self._queue.append(waiter)
            else:
                self._sending = True
        if waiter is None:
            try:
                return self._script(keys=keys, args=[now, numbers, *words])
            finally:
                self._hand_on()
        waiter.event.wait()
        if waiter.batch is not None:  # this thread sends the batch it is in
            try:
                self._send(waiter.batch, now)
            finally:
                self._hand_on()
        if waiter.error is not None:
            raise waiter.error
        return waiter.reply

    def _hand_on(self) -> None:
        """Give the queue to its first thread, or mark that nothing is in flight."""
        with self._lock:
            if not self._queue:
                self._sending = False
                return
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
        batch[0].batch = batch
        batch[0].event.set()

    def _send(self, batch: list[_Waiter], now: str) -> None:
        try:
            calls = [waiter.call for waiter in batch]
            keys, args = _joined(calls)
            reply = self._script(keys=keys, args=[now, *args])
            for waiter, answer in zip(batch, _split(reply, calls), strict=True):
                waiter.reply = answer
        except BaseException as error:  # every decision of the call gets it
            for waiter in batch:
                waiter.error = error
            raise
        finally:
            for waiter in batch[1:]:  # the first is this thread
                waiter.event.set()

"""Decisions that arrive together go to Redis together, in one pipeline.

Under load, many asyncio tasks ask for a decision in the same turn of the event
loop. Sending each on its own connection costs a round trip and a connection
each; instead, the first caller schedules a flush for the next turn and every
caller of this turn joins it: one pipeline of ``EVALSHA`` calls, one round trip,
and each caller gets its own answer. A caller that finds nothing on its way to
Redis goes at once, so a lone caller waits for nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ScriptBatcher"]

_MAX_BATCH = 256  # calls per pipeline; a bigger wave is sent as several pipelines


class ScriptBatcher:
    """Runs calls of one script through shared pipelines of an asyncio client."""

    def __init__(self, client: Any, script: Any) -> None:
        self._client = client
        self._script = script
        self._pending: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()  # held so they are not collected
        self._busy = 0  # calls on their way to Redis (alone or in a pipeline)

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """The script's answer for ``keys`` and ``args`` (or the error it raised)."""
        if not self._busy:  # nothing on the way: go now, no turn of the loop to wait
            self._busy += 1
            try:
                return await self._script(keys=keys, args=args)
            finally:
                self._busy -= 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), _MAX_BATCH):
            task = asyncio.ensure_future(self._send(pending[start : start + _MAX_BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        self._busy += 1
        try:
            if len(batch) == 1:
                keys, args, future = batch[0]
                answers: list[Any] = [await self._script(keys=keys, args=args)]
            else:
                pipe = self._client.pipeline(transaction=False)
                for keys, args, _ in batch:
                    await self._script(keys=keys, args=args, client=pipe)
                answers = await pipe.execute(raise_on_error=False)
        except Exception as error:  # the connection failed: every caller gets the error
            answers = [error] * len(batch)
        finally:
            self._busy -= 1
        for (_, _, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

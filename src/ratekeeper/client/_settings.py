"""What every face of the client is built with: one home for the options and their defaults.

``RetryTransport``, ``AsyncRetryTransport`` and ``RetryAdapter`` take the same
keyword options and hand them here; :class:`Settings` holds the retry policy,
the pacer (shared by every thread or task using that transport), the hooks,
the injected clocks and random source, and makes a request's
:class:`~ratekeeper.client._core.RequestFacts` and its flow.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ratekeeper.client._core import (
    Hooks,
    RequestFacts,
    RetryPolicy,
    WaitHook,
    retry_flow,
)
from ratekeeper.client._pacing import Pacer, pace_key
from ratekeeper.client._running import Clocks, Flow

__all__ = ["DEFAULT_CREDENTIAL_HEADERS", "Settings"]

#: the headers whose values tell one caller's quota from another's (hashed, never kept)
DEFAULT_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")


class Settings:
    """The options of a transport or adapter, read once."""

    def __init__(
        self,
        *,
        max_retries: int = 5,
        max_wait: float = 60.0,
        max_total_wait: float | None = None,
        pace: bool = True,
        smooth: bool = False,
        floor: int = 0,
        max_keys: int = 1024,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        credential_headers: Iterable[str] = DEFAULT_CREDENTIAL_HEADERS,
        on_wait: WaitHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.policy = RetryPolicy(
            max_retries=max_retries,
            max_wait=max_wait,
            max_total_wait=max_total_wait,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self.pacer = Pacer(floor=floor, smooth=smooth, max_keys=max_keys) if pace else None
        self.hooks = Hooks(on_wait)
        self.clocks = Clocks(clock, wall_clock, sleep, async_sleep)
        self.uniform = random
        self.credential_headers = tuple(name.lower() for name in credential_headers)

    def flow(
        self,
        method: str,
        url: str,
        origin: tuple[str, str, int | None],
        header: Callable[[str], str | None],
        replayable: bool,
    ) -> Flow:
        """The retry flow of one request (``origin``: scheme, host, port)."""
        key = None
        if self.pacer is not None:
            key = pace_key(*origin, (header(name) for name in self.credential_headers))
        facts = RequestFacts(method.upper(), url, replayable, key)
        return retry_flow(
            facts, self.clocks.reply(), self.policy, self.pacer, self.hooks, self.uniform
        )

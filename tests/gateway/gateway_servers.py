"""What the gateway's tests share: the fake clock's start, a gateway served in front of an upstream.

``gateway_for(example, upstream_url, **options)`` builds a gateway (the
example's policy, a memory store on a fake clock reading :data:`T0`, so the
numbers asserted are exact) and serves it under uvicorn
(``support.asgi_server``) with a client pointed at it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ratekeeper import MemoryStore, load_policy
from ratekeeper.gateway import Gateway, build_gateway
from support.asgi_server import serving
from support.clock import Clock

__all__ = ["EXAMPLES", "T0", "Served", "eventually", "gateway_for"]

EXAMPLES = Path(__file__).parents[2] / "examples"
T0 = 1_700_000_040.0  # a minute boundary


async def eventually(
    condition: Callable[[], bool], what: str = "the server never got there"
) -> None:
    """Wait (on real I/O, never on the rate limits' clock) until ``condition()`` holds."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


@dataclass
class Served:
    """A gateway under uvicorn and what the test reads: its URL, a client, the fake clock."""

    url: str
    gateway: Gateway
    store: MemoryStore
    clock: Clock
    client: httpx.AsyncClient


@asynccontextmanager
async def gateway_for(example: str, upstream_url: str, **options: Any) -> AsyncIterator[Served]:
    """The gateway of ``examples/<example>.yaml`` in front of ``upstream_url``, served."""
    clock = Clock(T0)
    store = MemoryStore(clock=clock)
    policy = load_policy(EXAMPLES / f"{example}.yaml")
    gateway = build_gateway(policy, store, upstream_url, **options)
    async with serving(gateway) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Served(url, gateway, store, clock, client)

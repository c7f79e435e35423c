"""Fixtures: ratekeeper's Envoy rate limit service on a real gRPC server on loopback
(grpc.aio clients), and ``ratekeeper serve --grpc-port`` in a process of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from rls_support import FLOWTRIQ, T0, Holder, Rls, RlsFactory, serve_command

from ratekeeper import AsyncLimiter
from ratekeeper.policy import Policy, load_policy, policy_from_text
from ratekeeper.server.envoy import start_grpc
from ratekeeper.stores import MemoryStore
from support.clock import Clock
from support.loopback import LoopbackProcess


@pytest.fixture
async def rls_factory() -> AsyncIterator[RlsFactory]:
    """Start a service on a free loopback port for a policy (a file or YAML text)."""
    servers: list[Any] = []
    channels: list[grpc.aio.Channel] = []

    async def start(policy: Path | str | Policy = FLOWTRIQ, *, store: Any = None) -> Rls:
        if isinstance(policy, Policy):
            loaded = policy
        else:
            loaded = load_policy(policy) if isinstance(policy, Path) else policy_from_text(policy)
        clock = Clock(T0)
        holder = Holder(loaded, AsyncLimiter(loaded, store or MemoryStore(clock=clock)))
        server, port, _ = await start_grpc(holder, "127.0.0.1", 0)
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return Rls(rls_pb2_grpc.RateLimitServiceStub(channel), clock, holder, port, channel)

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LoopbackProcess]:
    """``ratekeeper serve --grpc-port`` of the flowtriq test policy, in its own process."""
    with LoopbackProcess("ratekeeper", serve_command(FLOWTRIQ), tmp_path / "rk") as process:
        yield process


@pytest.fixture
async def rls(rls_factory: RlsFactory) -> Rls:
    """The flowtriq test policy with its ``envoy:`` section, at T0 on a memory store."""
    started: Rls = await rls_factory()
    return started

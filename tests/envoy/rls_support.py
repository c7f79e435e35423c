"""What the Envoy tests share: the test policy, descriptors and requests, the running service."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import wrappers_pb2

from ratekeeper import AsyncLimiter
from ratekeeper.policy import Policy
from support.clock import Clock
from support.loopback import free_port

HERE = Path(__file__).parent
FLOWTRIQ = HERE / "flowtriq_envoy.yaml"
T0 = 1_700_000_040.0  # a minute boundary


@dataclass
class Holder:
    """What the servicer reads of a service: the policy and limiter in force."""

    policy: Policy
    limiter: AsyncLimiter


Descriptor = Any  # a RateLimitDescriptor message


def descriptor(
    *entries: tuple[str, str], hits: int | None = None, limit: tuple[int, int] | None = None
) -> Descriptor:
    """A descriptor of ``(key, value)`` entries, with its own ``hits_addend`` when given, and
    its own ``limit`` override ``(requests_per_unit, unit)`` when given."""
    message = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
    )
    if hits is not None:
        message.hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=hits))
    if limit is not None:
        message.limit.requests_per_unit, message.limit.unit = limit
    return message


def request(domain: str, *descriptors: Descriptor, hits: int = 0) -> Any:
    return rls_pb2.RateLimitRequest(domain=domain, descriptors=descriptors, hits_addend=hits)


@dataclass
class Rls:
    """A running service: its stub, the clock of its memory store, its holder and port."""

    stub: Any
    clock: Clock
    holder: Holder
    port: int
    channel: grpc.aio.Channel

    async def ask(self, domain: str, *descriptors: Descriptor, hits: int = 0) -> Any:
        return await self.stub.ShouldRateLimit(request(domain, *descriptors, hits=hits))


RlsFactory = Callable[..., Any]


def serve_command(
    policy: Path, *, option: str = "--policy", registry: str = "none"
) -> Callable[[int, Path], list[str]]:
    """``ratekeeper serve`` of ``policy`` with its gRPC port the loopback process's port.

    ``option``: how the file is given (``--envoy-config`` for a reference config);
    ``registry``: the key registry's URL (none by default).
    """

    def command(port: int, directory: Path) -> list[str]:
        return [
            sys.executable, "-m", "ratekeeper", "serve", option, str(policy),
            "--registry", registry, "--port", str(free_port()), "--grpc-port", str(port),
        ]  # fmt: skip

    return command

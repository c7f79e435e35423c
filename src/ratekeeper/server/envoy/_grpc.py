"""``envoy.service.ratelimit.v3.RateLimitService`` over grpc.aio, with gRPC health.

One ``ShouldRateLimit`` call is one decision: every descriptor the policy's
``envoy:`` section maps becomes an item of one ``check_items`` call, so all
of a request's descriptors are decided in the engine's one atomic step (one
Redis round trip), all or nothing. Request ``hits_addend`` (0 means 1) is
each item's cost unless the descriptor sets its own, where 0 is a peek
inside the step (checked, never consumed).

grpc.aio does not run on uvloop, so gRPC gets its own event loop in its own
thread (:class:`GrpcServer`); decisions are still made on the service's
loop (``decide_on``), where the store's asyncio clients, their batching and
the decision hooks live. The service reloads its policy by swapping
``service.limiter`` and ``service.policy``: each call reads both there.

A store that cannot decide and fails closed (a 503 decision) is answered
with gRPC ``UNAVAILABLE``, so Envoy's ``failure_mode_deny`` decides, as
when ratekeeper cannot be reached at all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ...engine import UNAVAILABLE, PolicyDecision
from ...policy import Policy
from ._answers import SECONDS_OF_UNIT, response_of, rule_stats
from ._mapping import Descriptor, DescriptorMap, Reading

__all__ = ["RATE_LIMIT_SERVICE", "GrpcServer", "RateLimitServicer", "decide_on"]

#: the service name Envoy calls, and the one the health service reports
RATE_LIMIT_SERVICE = "envoy.service.ratelimit.v3.RateLimitService"

T = TypeVar("T")
#: runs a decision's coroutine where the service lives and waits for its answer
Submit = Callable[[Coroutine[Any, Any, T]], Awaitable[T]]


def decide_on(loop: asyncio.AbstractEventLoop) -> Submit[Any]:
    """Run coroutines on ``loop`` (the service's) from another thread's loop."""

    def submit(coroutine: Coroutine[Any, Any, T]) -> Awaitable[T]:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    return submit


async def _here(coroutine: Coroutine[Any, Any, T]) -> T:
    return await coroutine


class _UnavailableError(Exception):
    """The store cannot decide and fails closed."""


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """``ShouldRateLimit`` on a running service (anything with ``policy`` and ``limiter``)."""

    def __init__(self, service: Any, submit: Submit[Any] | None = None) -> None:
        self._service = service
        self._submit: Submit[Any] = submit if submit is not None else _here
        self._maps: tuple[Policy, DescriptorMap] | None = None

    def _map(self, policy: Policy) -> DescriptorMap:
        found = self._maps
        if found is None or found[0] is not policy:
            found = self._maps = (policy, DescriptorMap(policy))
        return found[1]

    async def ShouldRateLimit(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's)
        base = request.hits_addend or 1
        try:
            descriptors: list[Descriptor] = [
                (
                    [(entry.key, entry.value) for entry in descriptor.entries],
                    descriptor.hits_addend.value if descriptor.HasField("hits_addend") else base,
                    _limit(descriptor.limit) if descriptor.HasField("limit") else None,
                )
                for descriptor in request.descriptors
            ]
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        peer = _peer_ip(context.peer()) if context is not None else ""
        try:
            decision, reading = await self._submit(self._decide(request.domain, descriptors, peer))
        except _UnavailableError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the store cannot decide")
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if reading.rules:
            self._count(decision, reading, [cost for _, cost, _ in descriptors])
        return response_of(decision, reading)

    def _count(self, decision: PolicyDecision | None, reading: Reading, hits: list[int]) -> None:
        """The reference service's stats of each rule, in the service's metrics (if any)."""
        metrics = getattr(self._service, "metrics", None)
        if metrics is not None:
            for rule, stat, count in rule_stats(decision, reading, hits):
                metrics.rule_hits(rule, stat, count)

    async def _decide(
        self, domain: str, descriptors: list[Descriptor], peer: str
    ) -> tuple[PolicyDecision | None, Reading]:
        """Runs where the service lives: the policy and limiter in force now.

        A request with a descriptor that refuses every hit is refused whatever
        the others say: theirs are only looked at (peeks), never charged.
        """
        if not domain:  # the reference's own two refusals, in its words
            raise ValueError("rate limit domain must not be empty")
        if not descriptors:
            raise ValueError("rate limit descriptor list must not be empty")
        service = self._service
        limiter = service.limiter
        reading = self._map(service.policy).read(domain, descriptors)
        if not reading.items:
            return None, reading
        costs = [0] * len(reading.costs) if reading.refused else reading.costs
        decision: PolicyDecision = await limiter.check_items(
            reading.items, costs=costs, overrides=reading.overrides
        )
        if decision.outcome == UNAVAILABLE:
            raise _UnavailableError
        return decision, reading


def _limit(limit: Any) -> tuple[int, int]:
    """A descriptor's ``limit`` override as (requests per unit, the unit's seconds)."""
    seconds = SECONDS_OF_UNIT.get(limit.unit)
    if seconds is None:
        raise ValueError(f"a descriptor's limit needs a unit of second to year, got {limit.unit}")
    return limit.requests_per_unit, seconds


def _peer_ip(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` or ``ipv6:[::1]:5000`` -> the address (Envoy's, not the client's)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[")
    return rest.rpartition(":")[0] if kind == "ipv4" else ""


async def start_grpc(
    service: Any, host: str, port: int, submit: Submit[Any] | None = None
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A started grpc.aio server on this loop: the rate limit service and gRPC health."""
    server = grpc.aio.server()
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(RateLimitServicer(service, submit), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen on {address} for gRPC")
    await server.start()
    for name in ("", RATE_LIMIT_SERVICE):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, checker


class GrpcServer:
    """The gRPC server on its own event loop in its own thread (grpc.aio shuns uvloop).

    :meth:`start` returns once it listens (its port, or the error that stopped
    it); :meth:`stop` tells health NOT_SERVING, lets calls in flight finish
    within ``grace`` seconds and joins the thread.
    """

    def __init__(self, service: Any, host: str, port: int) -> None:
        self._service, self._host, self._port = service, host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ratekeeper-grpc", daemon=True)
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._stopped: asyncio.Event | None = None
        self._server: grpc.aio.Server | None = None
        self._checker: Any = None
        self.port = 0

    def start(self, service_loop: asyncio.AbstractEventLoop) -> int:
        self._submit = decide_on(service_loop)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed
        return self.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            self._server, self.port, self._checker = await start_grpc(
                self._service, self._host, self._port, self._submit
            )
        except BaseException as error:  # handed to start(), which raises it
            self._failed = error
            self._ready.set()
            return
        self._ready.set()
        await self._stopped.wait()

    async def _shutdown(self, grace: float) -> None:
        if self._checker is not None:
            await self._checker.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        assert self._stopped is not None
        self._stopped.set()

    def stop(self, grace: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(grace), self._loop).result()
        self._thread.join()

"""``envoy.service.ratelimit.v3.RateLimitService`` over gRPC, with gRPC health.

One ``ShouldRateLimit`` call is one decision: every descriptor the policy's
``envoy:`` section maps becomes an item of one ``check_items`` call, so all
of a request's descriptors are decided in the engine's one atomic step (one
Redis round trip), all or nothing. Request ``hits_addend`` (0 means 1) is
each item's cost unless the descriptor sets its own, where 0 is a peek
inside the step (checked, never consumed).

The server is grpcio's threaded one (``grpc.server`` and a thread pool), not
grpc.aio: on one core it costs half of grpc.aio's CPU per call (a bare
server answering a fixed message: 83-96 us against 142-150; ``ratekeeper
serve`` with the memory store: 145 us per call against 306 through grpc.aio
and the hop to the service's loop; docs/envoy.md, "Performance"). How a
call reaches the decision depends on the store:

- a store that never waits (the memory store, ``Store.never_waits``): the
  decision's coroutine is driven to its end right on gRPC's worker thread
  (:func:`in_place`), no event loop and no hop between threads; the store
  takes its lock for each step and the decision hooks take theirs, as they
  do for the sync limiter's threads;
- a store across a network (Redis): the decision runs on the service's loop
  (:func:`decide_on`), where the store's asyncio clients, their batching of
  concurrent calls and the decision hooks live; the worker thread waits for
  it, so the pool has a thread for each call in flight (:data:`WORKERS`).

The service reloads its policy by swapping ``service.limiter`` and
``service.policy``: each call reads both.

A store that cannot decide and fails closed (a 503 decision) is answered
with gRPC ``UNAVAILABLE``, so Envoy's ``failure_mode_deny`` decides, as
when ratekeeper cannot be reached at all.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ...engine import UNAVAILABLE, PolicyDecision
from ...policy import Policy
from ._answers import SECONDS_OF_UNIT, response_of, rule_stats
from ._mapping import Descriptor, DescriptorMap, Reading

__all__ = [
    "RATE_LIMIT_SERVICE",
    "WORKERS",
    "GrpcServer",
    "RateLimitServicer",
    "UnavailableError",
    "decide_on",
    "descriptors_of",
    "in_place",
]

#: the service name Envoy calls, and the one the health service reports
RATE_LIMIT_SERVICE = "envoy.service.ratelimit.v3.RateLimitService"
#: gRPC worker threads: a call deciding on the service's loop holds one while it waits, so
#: this many calls in flight can be batched into Redis round trips; idle ones cost nothing
#: (a health ``Watch`` stream holds one too)
WORKERS = 64

T = TypeVar("T")
#: runs a decision's coroutine to its end and returns its answer (on a gRPC worker thread)
Run = Callable[[Coroutine[Any, Any, T]], T]


def decide_on(loop: asyncio.AbstractEventLoop) -> Run[Any]:
    """Run coroutines on ``loop`` (the service's), waiting for each answer on this thread.

    ``asyncio.run_coroutine_threadsafe`` without its ``concurrent.futures``
    future, chained to the task by callbacks on both sides: the task's answer
    is handed over in a slot and the waiting thread released by a plain lock
    (12 us per call with 32 threads waiting, against 19).
    """

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        answer = _Answer()
        loop.call_soon_threadsafe(_start, loop, coroutine, answer)
        answer.ready.acquire()
        if answer.error is not None:
            raise answer.error
        return answer.value  # type: ignore[no-any-return]

    return run


class _Answer:
    """A decision's answer handed from the service's loop to the gRPC thread waiting for it."""

    __slots__ = ("error", "ready", "value")

    def __init__(self) -> None:
        self.ready = threading.Lock()
        self.ready.acquire()  # released by the loop once value or error is set
        self.value: Any = None
        self.error: BaseException | None = None


def _start(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any], answer: _Answer
) -> None:
    try:
        task = loop.create_task(coroutine)
    except BaseException as error:  # handed to the waiting thread, which raises it
        coroutine.close()
        answer.error = error
        answer.ready.release()
        return
    task.add_done_callback(functools.partial(_finish, answer))


def _finish(answer: _Answer, task: asyncio.Task[Any]) -> None:
    try:
        answer.value = task.result()
    except BaseException as error:  # a cancelled task too: the waiting thread raises it
        answer.error = error
    answer.ready.release()


def in_place(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends (a decision on the memory store) here, no loop.

    One ``send`` runs it to its end; a coroutine that suspends instead (it
    waits on I/O, so needs its loop) is closed and refused.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("the decision waited: a store that waits decides on the service's loop")


class UnavailableError(Exception):
    """The store cannot decide and fails closed."""


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """``ShouldRateLimit`` on a running service (anything with ``policy`` and ``limiter``).

    Called on gRPC's worker threads. ``submit`` runs the decisions of a store
    that waits (:func:`decide_on` the service's loop); a store that never
    waits is decided :func:`in_place`, and so is every store without ``submit``.
    """

    def __init__(self, service: Any, submit: Run[Any] | None = None) -> None:
        self._service = service
        self._submit: Run[Any] = submit if submit is not None else in_place
        self._maps: tuple[Policy, DescriptorMap] | None = None

    def _map(self, policy: Policy) -> DescriptorMap:
        found = self._maps
        if found is None or found[0] is not policy:
            found = self._maps = (policy, DescriptorMap(policy))
        return found[1]

    def ShouldRateLimit(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's)
        try:
            descriptors = descriptors_of(request)
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        peer = _peer_ip(context.peer()) if context is not None else ""
        run = in_place if self._service.limiter.store.never_waits else self._submit
        try:
            decision, reading = run(self.decide(request.domain, descriptors, peer))
        except UnavailableError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the store cannot decide")
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return self.answer(decision, reading, descriptors)

    def answer(
        self, decision: PolicyDecision | None, reading: Reading, descriptors: list[Descriptor]
    ) -> Any:
        """The ``RateLimitResponse`` of a decided request, its rules counted in the metrics."""
        if reading.rules:
            self._count(decision, reading, [cost for _, cost, _ in descriptors])
        return response_of(decision, reading)

    def _count(self, decision: PolicyDecision | None, reading: Reading, hits: list[int]) -> None:
        """The reference service's stats of each rule, in the service's metrics (if any)."""
        metrics = getattr(self._service, "metrics", None)
        if metrics is not None:
            for rule, stat, count in rule_stats(decision, reading, hits):
                metrics.rule_hits(rule, stat, count)

    async def decide(
        self, domain: str, descriptors: list[Descriptor], peer: str = ""
    ) -> tuple[PolicyDecision | None, Reading]:
        """Runs where the service lives: the policy and limiter in force now.

        ``ValueError``: a request the reference refuses too (no domain, no
        descriptors); ``UnavailableError``: the store cannot decide (fails closed).

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
            raise UnavailableError
        return decision, reading


def descriptors_of(request: Any) -> list[Descriptor]:
    """A ``RateLimitRequest``'s descriptors: entries, hits (the request's ``hits_addend``,
    0 meaning 1, unless the descriptor sets its own) and ``limit`` override; ``ValueError``
    for a limit without a unit."""
    base = request.hits_addend or 1
    return [
        (
            [(entry.key, entry.value) for entry in descriptor.entries],
            descriptor.hits_addend.value if descriptor.HasField("hits_addend") else base,
            _limit(descriptor.limit) if descriptor.HasField("limit") else None,
        )
        for descriptor in request.descriptors
    ]


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
    service: Any, host: str, port: int, submit: Run[Any] | None = None
) -> tuple[GrpcServer, int, health.HealthServicer]:
    """A started gRPC server: the rate limit service and gRPC health.

    Decisions that wait run on ``submit``, by default on this (the running)
    loop, which must stay free to run them: the server's threads call into it.
    """
    if submit is None:
        submit = decide_on(asyncio.get_running_loop())
    server = grpc.server(
        ThreadPoolExecutor(WORKERS, thread_name_prefix="ratekeeper-grpc"),
        # a port another process holds is an error, not shared: two services on one port
        # would split Envoy's calls between two memory stores (twice the limits)
        options=[("grpc.so_reuseport", 0)],
    )
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(RateLimitServicer(service, submit), server)
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpcio's threaded server raises where grpc.aio answers 0
        bound = 0
    if bound == 0:
        server.stop(None)
        raise OSError(f"cannot listen on {address} for gRPC")
    server.start()
    for name in ("", RATE_LIMIT_SERVICE):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, bound, checker), bound, checker


class GrpcServer:
    """A started gRPC server (grpcio's own threads): its port, and a graceful stop.

    :meth:`stop` tells health NOT_SERVING, lets calls in flight finish within
    ``grace`` seconds (``None``: cancels them) and waits in a thread, since
    calls in flight may be deciding on the calling loop.
    """

    def __init__(self, server: grpc.Server, port: int, checker: health.HealthServicer) -> None:
        self._server, self.port, self._checker = server, port, checker

    async def stop(self, grace: float | None = 5.0) -> None:
        self._checker.enter_graceful_shutdown()
        await asyncio.to_thread(self._server.stop(grace).wait)

    async def wait_for_termination(self) -> None:
        await asyncio.to_thread(self._server.wait_for_termination)

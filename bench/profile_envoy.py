"""Where a ShouldRateLimit call's server CPU goes: the layers measured one by one, in process.

bench_envoy.py measures the whole server; this splits one call (the ``one``
section's request, memory store, the same policy) into what each layer costs,
CPU time per call:

- ``decision``: ``AsyncLimiter.check_items`` alone (the engine, memory store),
  32 calls in flight on the service's loop;
- ``servicer, in place``: ``RateLimitServicer.ShouldRateLimit`` called
  directly (descriptor mapping + the decision driven in place + the response
  message), as gRPC's worker threads call it for the memory store;
- ``hop``: ``decide_on``'s way for a store that waits: an empty coroutine run
  on a uvloop loop in another thread, this thread waiting for it (both
  threads' CPU, one at a time);
- ``grpc call``: a whole call over loopback to an in-process ``start_grpc``
  server (grpcio's threaded server, as ``serve``), from a grpc.aio client in
  the same process: server and client CPU together, so an upper bound;
- ``... fixed answer``: the same with a servicer returning a prepared
  response, on the threaded server and on grpc.aio: gRPC's own cost.

gRPC's experiments are set as ``serve`` sets them (this imports
``ratekeeper.server.envoy`` before ``grpc``).

Run from the repository root::

    python bench/profile_envoy.py
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_envoy import API, POLICY, rls_request

N = 20_000
IN_FLIGHT = 32


def cpu() -> float:
    return time.process_time()


async def per_call(make: Any, n: int = N) -> float:
    """CPU us per call of ``await make()``, ``IN_FLIGHT`` at a time (the whole process)."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await make()

    await asyncio.gather(*(worker(200) for _ in range(IN_FLIGHT)))  # warm-up
    before = cpu()
    await asyncio.gather(*(worker(n // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    return (cpu() - before) * 1e6 / (n // IN_FLIGHT * IN_FLIGHT)


class Holder:
    def __init__(self, policy: Any, limiter: Any) -> None:
        self.policy, self.limiter = policy, limiter


def service_thread() -> asyncio.AbstractEventLoop:
    import uvloop

    loop = uvloop.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return loop


def sync_per_call(call: Any, n: int = N) -> float:
    """CPU us per call of ``call()``, one at a time (the whole process)."""
    for _ in range(n // 10):
        call()
    before = cpu()
    for _ in range(n):
        call()
    return (cpu() - before) * 1e6 / n


def main() -> None:
    from ratekeeper.server.envoy._grpc import (  # isort: skip  # before grpc: its experiments
        WORKERS,
        RateLimitServicer,
        decide_on,
        start_grpc,
    )

    from ratekeeper import AsyncLimiter
    from ratekeeper.policy import policy_from_text
    from ratekeeper.server.envoy._mapping import DescriptorMap
    from ratekeeper.stores import MemoryStore

    policy = policy_from_text(POLICY)
    request = rls_request("one")
    service_loop = service_thread()

    def on_service(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, service_loop).result()

    async def build() -> Holder:
        return Holder(policy, AsyncLimiter(policy, MemoryStore()))

    holder = on_service(build())
    item = DescriptorMap(policy).item(list(API))
    assert item is not None
    servicer = RateLimitServicer(holder)
    rows: list[tuple[str, float]] = []
    rows.append(("decision", on_service(per_call(lambda: holder.limiter.check_items([item])))))
    rows.append(
        ("servicer, in place", sync_per_call(lambda: servicer.ShouldRateLimit(request, None)))
    )

    async def nothing() -> None:
        return None

    hop = decide_on(service_loop)
    rows.append(("hop (decide_on, one at a time)", sync_per_call(lambda: hop(nothing()), N // 4)))

    async def grpc_side() -> None:
        from concurrent.futures import ThreadPoolExecutor

        import grpc
        from envoy.service.ratelimit.v3 import rls_pb2_grpc

        async def through(port: int) -> float:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = rls_pb2_grpc.RateLimitServiceStub(channel).ShouldRateLimit
                return await per_call(lambda: call(request), 10_000)

        server, port, _ = await start_grpc(holder, "127.0.0.1", 0, hop)
        rows.append(("grpc call, servicer (server + client)", await through(port)))
        await server.stop(None)
        fixed = servicer.ShouldRateLimit(request, None)

        class Fixed(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
            def ShouldRateLimit(self, request: Any, context: Any) -> Any:  # noqa: N802
                return fixed

        threaded = grpc.server(ThreadPoolExecutor(WORKERS))
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(Fixed(), threaded)
        port = threaded.add_insecure_port("127.0.0.1:0")
        threaded.start()
        rows.append(("grpc call, fixed answer (server + client)", await through(port)))
        threaded.stop(None)

        class AioFixed(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
            async def ShouldRateLimit(self, request: Any, context: Any) -> Any:  # noqa: N802
                return fixed

        bare = grpc.aio.server()
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(AioFixed(), bare)
        port = bare.add_insecure_port("127.0.0.1:0")
        await bare.start()
        rows.append(("grpc.aio call, fixed answer (server + client)", await through(port)))
        await bare.stop(None)

    asyncio.run(grpc_side())
    print("| layer | CPU us per call |\n|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.0f} |")


if __name__ == "__main__":
    main()

"""Where a ShouldRateLimit call's server CPU goes: the Python layers measured one by one.

bench_envoy.py measures the whole server, and its ``grpc ceiling`` row what
gRPC itself costs (a server answering a prepared response, in a process of
its own: measured in this process beside a client, gRPC's threads and the
client's would share one GIL, and the figure would be neither's). This
splits the rest of one call (memory store, bench_envoy's policy), CPU time
per call:

- ``decision``: ``AsyncLimiter.check_items`` alone (the engine, memory store),
  32 calls in flight on the service's loop;
- ``servicer, in place``: ``RateLimitServicer.ShouldRateLimit`` called
  directly (descriptor mapping + the decision driven in place + the response
  message), as gRPC's worker threads call it for the memory store, with the
  ``one`` and ``two`` sections' requests;
- ``hop``: ``decide_on``'s way for a store that waits: an empty coroutine run
  on a uvloop loop in another thread, the calling thread waiting for it
  (both threads' CPU), one at a time and from 32 threads at once.

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
    from concurrent.futures import ThreadPoolExecutor

    from ratekeeper import AsyncLimiter
    from ratekeeper.policy import policy_from_text
    from ratekeeper.server.envoy._grpc import RateLimitServicer, decide_on
    from ratekeeper.server.envoy._mapping import DescriptorMap
    from ratekeeper.stores import MemoryStore

    policy = policy_from_text(POLICY)
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
    for section in ("one", "two"):
        request = rls_request(section)
        rows.append(
            (
                f"servicer, in place ({section})",
                sync_per_call(lambda request=request: servicer.ShouldRateLimit(request, None)),
            )
        )

    async def nothing() -> None:
        return None

    hop = decide_on(service_loop)
    rows.append(("hop, one at a time", sync_per_call(lambda: hop(nothing()), N // 4)))

    def hops(count: int) -> None:
        for _ in range(count):
            hop(nothing())

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(hops, [100] * IN_FLIGHT))  # warm-up: every thread started
        before = cpu()
        list(pool.map(hops, [N // IN_FLIGHT] * IN_FLIGHT))
        rows.append((f"hop, {IN_FLIGHT} threads", (cpu() - before) * 1e6 / N))
    print("| layer | CPU us per call |\n|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.0f} |")


if __name__ == "__main__":
    main()

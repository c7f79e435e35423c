"""How a ShouldRateLimit call reaches its decision: in place (memory) or on the service's loop.

The memory store never waits, so its decisions are driven to their end on
gRPC's worker thread; a Redis store's run on the loop ``start_grpc`` was
called on (its asyncio clients live there). Both must answer alike.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from envoy.service.ratelimit.v3 import rls_pb2
from rls_support import RlsFactory, descriptor

from ratekeeper.server.envoy._grpc import in_place
from ratekeeper.stores import MemoryStore, RedisStore

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT


async def six_heartbeats(rls_factory: RlsFactory, store: object) -> list[tuple[int, int]]:
    """(code, limit_remaining) of six heartbeats of one node within one clock minute."""
    rls = await rls_factory(store=store)
    for attempt in range(2):  # the minute's fixed window must not end between the calls
        minute = time.time() // 60
        ping = descriptor(
            ("generic_key", "heartbeat"), ("api_key", "demo-key"), ("node", f"n{attempt}")
        )
        answers = [await rls.ask("flowtriq", ping) for _ in range(6)]
        if time.time() // 60 == minute:
            break
    return [(a.overall_code, a.statuses[0].limit_remaining) for a in answers]


@pytest.mark.redis
async def test_redis_decided_on_the_service_loop_answers_as_memory_decided_in_place(
    rls_factory: RlsFactory, redis_url: str
) -> None:
    in_memory = await six_heartbeats(rls_factory, MemoryStore())
    redis = RedisStore.from_url(redis_url)
    try:
        on_redis = await six_heartbeats(rls_factory, redis)
    finally:
        await redis.aclose()

    assert in_memory == [(OK, 4), (OK, 3), (OK, 2), (OK, 1), (OK, 0), (OVER, 0)]
    assert on_redis == in_memory


def test_a_decision_that_waits_is_refused_in_place_not_left_half_done() -> None:
    async def waits() -> int:
        await asyncio.sleep(0)
        return 1

    async def never_waits() -> int:
        return 1

    assert in_place(never_waits()) == 1
    with pytest.raises(RuntimeError, match="waited"):
        in_place(waits())


async def test_a_port_another_service_listens_on_is_refused_not_shared(
    rls_factory: RlsFactory,
) -> None:
    from ratekeeper.server.envoy import start_grpc

    first = await rls_factory()
    with pytest.raises(OSError, match="cannot listen"):
        # grpcio shares a port by default (SO_REUSEPORT): two services would split the calls
        await start_grpc(first.holder, "127.0.0.1", first.port)

"""``ping``/``ping_async`` on both stores: is the store there? Never raises, counts no outage."""

from __future__ import annotations

import pytest

from ratekeeper import MemoryStore
from ratekeeper.stores import RedisStore


async def test_memory_is_always_there() -> None:
    store = MemoryStore()
    assert store.ping() is True
    assert await store.ping_async() is True


@pytest.mark.redis
async def test_redis_answers_ping(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        assert store.ping() is True
        assert await store.ping_async() is True
    finally:
        store.close()
        await store.aclose()


async def test_unreachable_redis_is_false_and_not_an_outage(unused_tcp_port: int) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{unused_tcp_port}/0")
    try:
        assert store.ping() is False
        assert await store.ping_async() is False
        assert (store.degraded, store.errors) == (False, 0)
    finally:
        store.close()
        await store.aclose()


def test_a_store_without_a_sync_client_says_so() -> None:
    import redis.asyncio

    store = RedisStore(async_client=redis.asyncio.Redis())
    with pytest.raises(RuntimeError, match="ping_async"):
        store.ping()

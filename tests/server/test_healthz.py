"""``GET /healthz``: the store pinged; 200 when it answers, 503 when it does not."""

from __future__ import annotations

import pytest
from service_client import MakeService, example

from ratekeeper.stores import RedisStore


async def test_a_memory_store_is_healthy(make_service: MakeService) -> None:
    client = make_service(example("scanner"), check_token="a-check-token")
    response = await client.http.get("/healthz")  # no token needed
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "store": "ok",
        "degraded": False,
        "policy": "scanner",
    }


@pytest.mark.redis
async def test_a_reachable_redis_is_healthy(make_service: MakeService, redis_url: str) -> None:
    client = make_service(example("scanner"), store=RedisStore.from_url(redis_url))
    response = await client.http.get("/healthz")
    assert (response.status_code, response.json()["store"]) == (200, "ok")


async def test_an_unreachable_redis_is_503(make_service: MakeService, unused_tcp_port: int) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{unused_tcp_port}/0")
    client = make_service(example("scanner"), store=store)
    response = await client.http.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "store": "unreachable",
        "degraded": False,  # a ping is no decision: the store is not failing over
        "policy": "scanner",
    }

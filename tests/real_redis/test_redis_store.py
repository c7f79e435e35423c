"""RedisStore against real servers: exact across processes, one round trip, survives outages."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from ratekeeper import (
    AsyncRateLimiter,
    Limiter,
    RateLimiter,
    RedisStore,
    load_policy,
)
from ratekeeper.stores.redis.batching import ThreadBatcher
from support.hammer import hammer
from support.redis_servers import RedisServer

pytestmark = pytest.mark.redis

# windows of 7 days: a run never straddles a fixed window's boundary in practice
RATES = "1000 per 7 days"
ALGORITHMS = ["sliding_log", "fixed_window", "token_bucket", "sliding_window"]


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, timeout=2.0)
    yield store
    store.close()


@pytest.fixture
async def async_store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_url, timeout=2.0)
    yield store
    await store.aclose()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_four_processes_of_eight_threads_admit_exactly_the_limit(
    redis_url: str, algorithm: str
) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        counts = pool.starmap(hammer, [(redis_url, "hot", RATES, algorithm, 8, 50)] * 4)
    # 1,600 attempts within one window of 7 days: exactly the limit passes
    assert sum(counts) == 1000


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_two_hundred_concurrent_tasks_admit_exactly_the_limit(
    async_store: RedisStore, algorithm: str
) -> None:
    limiter = AsyncRateLimiter(async_store, algorithm=algorithm)

    async def task() -> int:
        return sum([(await limiter.hit("hot", RATES)).allowed for _ in range(6)])

    counts = await asyncio.gather(*(task() for _ in range(200)))
    assert sum(counts) == 1000


def _commandstats(client: redis.Redis) -> dict[str, int]:
    info: dict[str, Any] = client.info("commandstats")
    return {name: int(stats["calls"]) for name, stats in info.items()}


def test_a_decision_is_one_script_call_whatever_the_number_of_rates(
    store: RedisStore, redis_server: RedisServer
) -> None:
    limiter = RateLimiter(store)
    limiter.hit("warm", "1/second")  # the script is loaded once
    client = redis_server.client()
    before = _commandstats(client)
    for index in range(50):
        limiter.hit(f"user:{index}", "10/second;100/minute;1000/hour")
    after = _commandstats(client)
    delta = {name: after[name] - before.get(name, 0) for name in after}
    # commands run inside the script count too; a client round trip is an EVALSHA
    assert delta["cmdstat_evalsha"] == 50
    assert delta["cmdstat_time"] == 50  # one clock read per decision, inside the script
    called = {name for name, calls in delta.items() if calls}
    assert not called & {"cmdstat_eval", "cmdstat_script|load", "cmdstat_multi"}


def test_a_policy_decision_with_two_limits_is_one_script_call(
    store: RedisStore, redis_server: RedisServer
) -> None:
    limiter = Limiter(load_policy("examples/scanner.yaml"), store=store)
    headers = {"X-API-Key": "demo-pro"}
    limiter.check(method="POST", path="/api/scans", headers=headers, client_ip="192.0.2.1")
    client = redis_server.client()
    before = _commandstats(client)
    for _ in range(20):
        limiter.check(method="POST", path="/api/scans", headers=headers, client_ip="192.0.2.1")
    after = _commandstats(client)
    assert after["cmdstat_evalsha"] - before["cmdstat_evalsha"] == 20
    keys = sorted(key.decode() for key in client.keys("rk:*"))
    assert keys == [
        "rk:l3600000:scanner:scans:{demo-pro}",
        "rk:w60000:scanner:api:{demo-pro}",
    ]


def test_every_key_has_a_ttl(store: RedisStore, redis_server: RedisServer) -> None:
    limiter = RateLimiter(store)
    for algorithm in ALGORITHMS:
        limiter.hit(f"k-{algorithm}", "5/minute", algorithm=algorithm)
    client = redis_server.client()
    keys = client.keys("rk:*")
    assert len(keys) == 4
    assert all(0 < client.pttl(key) <= 120_000 for key in keys)


def test_the_scripts_come_back_after_a_script_flush(
    store: RedisStore, redis_server: RedisServer
) -> None:
    limiter = RateLimiter(store)
    assert limiter.hit("k", "2/minute").remaining == 1
    redis_server.client().script_flush()
    assert limiter.hit("k", "2/minute").remaining == 0


def test_time_comes_from_redis_not_from_the_app_server(
    store: RedisStore, redis_server: RedisServer
) -> None:
    decision = RateLimiter(store, algorithm="fixed_window").hit("k", "5/second")
    seconds, micros = redis_server.client().time()
    server_now = seconds + micros / 1e6
    assert server_now - 1.5 < decision.reset_at <= server_now + 1.0


# outages


def _flip_store(url: str, on_error: str) -> RedisStore:
    return RedisStore.from_url(url, on_error=on_error, timeout=0.2)  # type: ignore[arg-type]


def test_failing_open_admits_while_redis_is_down_and_is_exact_when_it_returns(
    restartable_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = _flip_store(restartable_redis.url, "open")
    limiter = RateLimiter(store, algorithm="sliding_log")
    assert [limiter.hit("k", "3/hour").allowed for _ in range(4)] == [True] * 3 + [False]
    restartable_redis.stop()  # a crash: counters are gone with it (no persistence)
    with caplog.at_level(logging.WARNING, logger="ratekeeper.redis"):
        down = [limiter.hit(f"other-{index}", "3/hour") for index in range(5)]
        remembered = limiter.hit("k", "3/hour")
    assert all(decision.allowed for decision in down)
    assert not remembered.allowed  # known to be over its limit: still refused
    assert store.errors >= 5
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    restartable_redis.start()
    deadline = time.monotonic() + 1.0
    while store.errors and time.monotonic() < deadline:
        errors = store.errors
        limiter.hit("probe", "1000/hour")
        if store.errors == errors:
            break
    assert [limiter.hit("k2", "3/hour").allowed for _ in range(4)] == [True] * 3 + [False]
    store.close()


def test_failing_closed_refuses_while_redis_is_down(restartable_redis: RedisServer) -> None:
    store = _flip_store(restartable_redis.url, "closed")
    limiter = RateLimiter(store)
    assert limiter.hit("k", "3/hour").allowed
    restartable_redis.stop()
    refused = limiter.hit("k", "3/hour")
    assert (refused.allowed, refused.retry_after) == (False, 1.0)
    policy = Limiter(load_policy("examples/scanner.yaml"), store=store)
    answer = policy.check(method="GET", path="/api/servers", client_ip="192.0.2.1")
    assert (answer.status_code, answer.headers) == (503, {"Retry-After": "1"})
    restartable_redis.start()
    assert limiter.hit("k", "3/hour").allowed  # exact again: the old counts died with Redis
    store.close()


async def test_the_async_face_fails_open_and_recovers(restartable_redis: RedisServer) -> None:
    store = _flip_store(restartable_redis.url, "open")
    limiter = AsyncRateLimiter(store, algorithm="fixed_window")
    assert (await limiter.hit("k", "2/hour")).remaining == 1
    restartable_redis.stop()
    assert (await limiter.hit("k", "2/hour")).allowed
    restartable_redis.start()
    results = [(await limiter.hit("fresh", "2/hour")).allowed for _ in range(3)]
    assert results == [True, True, False]
    await store.aclose()


def test_failing_local_limits_each_instance_to_its_share_then_returns_to_redis(
    restartable_redis: RedisServer,
) -> None:
    store = RedisStore.from_url(restartable_redis.url, on_error="local", instances=4, timeout=0.2)
    limiter = RateLimiter(store, algorithm="fixed_window")
    assert limiter.hit("k", "40/hour").remaining == 39  # from Redis
    restartable_redis.stop()
    local = [limiter.hit(f"down-{index // 12}", "40/hour").allowed for index in range(12)]
    assert local == [True] * 10 + [False] * 2  # 40 / 4 instances = 10 each while down
    restartable_redis.start()
    assert limiter.hit("down-0", "40/hour").remaining == 39  # Redis again; local counts dropped
    store.close()


def test_a_policy_with_lockouts_never_raises_while_redis_is_down(
    restartable_redis: RedisServer,
) -> None:
    for on_error, status in (("open", 200), ("closed", 503)):
        store = RedisStore.from_url(restartable_redis.url, on_error=on_error, timeout=0.2)  # type: ignore[arg-type]
        limiter = Limiter(load_policy("examples/utmstack.yaml"), store=store)
        restartable_redis.stop()
        login = limiter.check(method="POST", path="/api/authenticate", client_ip="192.0.2.9")
        assert login.status_code == status
        assert limiter.record_response(login, 401) == []
        grant_or_error: object
        try:
            grant_or_error = store.leases.acquire("c", 1, 5.0)
        except Exception as error:
            grant_or_error = error
        if on_error == "open":
            assert getattr(grant_or_error, "acquired", False)
        else:
            assert type(grant_or_error).__name__ == "StoreUnavailableError"
        restartable_redis.start()
        store.close()


async def test_decisions_that_arrive_together_share_one_script_call(
    async_store: RedisStore, redis_server: RedisServer
) -> None:
    limiter = AsyncRateLimiter(async_store, algorithm="sliding_window")
    await limiter.hit("warm-up", "10/minute")  # the script is loaded: no NOSCRIPT retries below
    client = redis_server.client()
    before = _commandstats(client)
    answers = await asyncio.gather(*(limiter.hit(f"k{index}", "10/minute") for index in range(300)))
    after = _commandstats(client)
    assert [answer.remaining for answer in answers] == [9] * 300
    # the first caller goes alone; the other 299 wait one turn and go in batches of 128
    assert after["cmdstat_evalsha"] - before["cmdstat_evalsha"] == 1 + 3
    pool = async_store._get_async_client().connection_pool
    connections = len(pool._available_connections) + len(pool._in_use_connections)
    assert connections <= 4


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_batch_answers_exactly_as_the_same_decisions_one_by_one(
    redis_url: str, redis_server: RedisServer, algorithm: str
) -> None:
    """Keys repeat inside a batch: each decision sees what the ones before it took.

    The first caller of a wave goes alone and may reach Redis before or after
    the batch of the others (two connections): it is given a key of its own.
    """
    clock = [1_700_000_000.0]
    calls = [("alone", "5/minute", 1)]
    calls += [(f"k{index % 7}", "5/minute;8/hour", 1 + index % 3) for index in range(100)]

    async def answers(together: bool) -> list[tuple[bool, int, float, float]]:
        store = RedisStore.from_url(redis_url, timeout=2.0, clock=lambda: clock[0])
        redis_server.client().flushdb()
        limiter = AsyncRateLimiter(store, algorithm=algorithm)
        if together:
            decisions = await asyncio.gather(*(limiter.hit(k, r, cost=c) for k, r, c in calls))
        else:
            decisions = [await limiter.hit(k, r, cost=c) for k, r, c in calls]
        await store.aclose()
        return [(d.allowed, d.remaining, d.reset_at, d.retry_after) for d in decisions]

    one_by_one = await answers(together=False)
    together = await answers(together=True)
    assert together == one_by_one
    # and the batch was all-or-nothing per decision: 5 per minute per key at most
    assert sum(allowed for allowed, *_ in together) <= 7 * 5


async def test_decisions_of_a_batch_with_several_rates_take_all_or_nothing(
    async_store: RedisStore, redis_server: RedisServer
) -> None:
    limiter = AsyncRateLimiter(async_store, algorithm="fixed_window")
    decisions = await asyncio.gather(
        *(limiter.hit("both", "3 per 7 days;100 per 30 days") for _ in range(10))
    )
    # (the first caller goes alone and may land before or after the batch)
    assert sorted(d.allowed for d in decisions) == [False] * 7 + [True] * 3
    # the refused seven took nothing from the wider rate either
    assert (await limiter.peek("both", "100 per 30 days")).remaining == 97


def test_threads_share_script_calls_and_admit_exactly_the_limit(
    store: RedisStore, redis_server: RedisServer
) -> None:
    limiter = RateLimiter(store, algorithm="sliding_log")
    limiter.hit("warm-up", "5/minute")  # the script is loaded: no NOSCRIPT retries below
    client = redis_server.client()
    before = _commandstats(client)
    barrier = threading.Barrier(32)

    def work(index: int) -> int:
        barrier.wait()
        return sum(limiter.hit(f"k{(index + n) % 4}", "100 per 7 days").allowed for n in range(25))

    with ThreadPoolExecutor(32) as pool:
        admitted = sum(pool.map(work, range(32)))
    after = _commandstats(client)
    assert admitted == 4 * 100  # 800 attempts on 4 keys of 100 each
    calls = after["cmdstat_evalsha"] - before["cmdstat_evalsha"]
    assert calls < 800  # threads that arrived while a call was in flight went together


def test_threads_never_hang_while_redis_is_down(restartable_redis: RedisServer) -> None:
    store = _flip_store(restartable_redis.url, "open")
    limiter = RateLimiter(store)
    assert limiter.hit("k", "3/hour").allowed
    restartable_redis.stop()

    def work(index: int) -> list[bool]:
        return [limiter.hit(f"t{index}", "3/hour").allowed for _ in range(5)]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(work, range(16), timeout=30))
    assert answers == [[True] * 5] * 16  # failing open, every thread answered
    restartable_redis.start()
    store.close()


def _hit_in_child(store: RedisStore) -> None:
    os._exit(0 if RateLimiter(store).hit("forked", "5/minute").allowed else 1)


def test_a_child_forked_while_a_call_was_in_flight_still_decides(store: RedisStore) -> None:
    """Pre-fork servers (gunicorn --preload): the child starts with nothing in flight."""
    assert RateLimiter(store).hit("parent", "5/minute").allowed
    batcher = store._decide
    assert isinstance(batcher, ThreadBatcher)
    batcher._sending = True  # as if another thread's call were in flight at fork time
    child = multiprocessing.get_context("fork").Process(target=_hit_in_child, args=(store,))
    try:
        child.start()
        child.join(timeout=20)
        assert child.exitcode == 0  # None would mean it hung waiting for the parent's call
    finally:
        if child.is_alive():
            child.kill()
        batcher._sending = False


def test_counters_are_kept_small(store: RedisStore, redis_server: RedisServer) -> None:
    """Short keys and values: Redis memory per counter is mostly the key itself."""
    clock = 1_700_000_000.0
    store = RedisStore(store._client, clock=lambda: clock)
    limiter = RateLimiter(store)
    limiter.hit("user:1", "10/minute", algorithm="sliding_window")
    limiter.hit("user:1", "10/minute", algorithm="fixed_window")
    limiter.hit("user:1", "60/minute", algorithm="token_bucket")
    limiter.hit("user:1", "7/minute", algorithm="token_bucket")
    client = redis_server.client()
    index = int(clock * 1000) // 60_000
    assert client.get("rk:w60000:{user:1}") == f"{index} 0 1".encode()
    assert client.get("rk:f60000:{user:1}") == f"{index} 1".encode()
    # one token every whole second: the TAT alone, kept by Redis as an integer
    assert client.get("rk:t60000:60:60:{user:1}") == b"1700000001000"
    assert client.object("encoding", "rk:t60000:60:60:{user:1}") == b"int"
    # 60000 / 7 ms is not whole: the remainder comes along
    assert client.get("rk:t60000:7:7:{user:1}") == b"1700000008571 3"


def test_remembered_refusals_skip_the_round_trip_and_end_when_the_counter_could_pass(
    redis_server: RedisServer, redis_url: str
) -> None:
    clock = [1_700_000_000.0]
    store = RedisStore.from_url(redis_url, timeout=2.0, clock=lambda: clock[0])
    limiter = Limiter(load_policy("examples/scanner.yaml"), store=store, remember_refusals=True)
    headers = {"X-API-Key": "demo-free"}

    def scan() -> int:
        return limiter.check(
            method="POST", path="/api/scans", headers=headers, client_ip="192.0.2.1"
        ).status_code

    assert [scan() for _ in range(21)] == [200] * 20 + [429]
    client = redis_server.client()
    before = _commandstats(client)["cmdstat_evalsha"]
    refused = [
        limiter.check(method="POST", path="/api/scans", headers=headers, client_ip="192.0.2.1")
        for _ in range(10)
    ]
    assert _commandstats(client)["cmdstat_evalsha"] == before  # answered from memory
    assert {d.status_code for d in refused} == {429}
    assert refused[-1].headers["Retry-After"] == "3600"  # the first scan leaves the log
    assert [s.name for s in refused[-1].statuses] == ["scans"]
    listing = limiter.check(method="GET", path="/api/servers", headers=headers)
    assert listing.remaining == 39  # the API limit is still asked, and still exact
    clock[0] += 3600
    assert scan() == 200  # the scan quota has room again: asked, and admitted
    store.close()

"""One key's counters by its id: usage read without consuming, and reset (memory and Redis).

The admin API's ``GET /admin/keys/{id}/usage`` and ``POST /admin/keys/{id}/reset``
stand on ``limiter.usage`` / ``limiter.reset_key`` and the stores' ``reset``;
these pin their numbers on the memory store (fake clock) and on real Redis
(standalone and Cluster, the store told the same fake time).
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore, RedisStore
from ratekeeper.engine import LimitUsage
from ratekeeper.policy import KeyEntry, hash_api_key, key_limits, policy_from_text
from ratekeeper.stores import Store
from support.clock import Clock

#: aligned to the minute and the day: fixed windows start here
T0 = 1_728_000.0

POLICY = policy_from_text(
    textwrap.dedent("""\
    version: 1
    name: u
    limits:
      api: {by: api_key, algorithm: fixed_window}
      daily: {by: api_key, rate: 1000/day, algorithm: fixed_window}
      per_plan: {by: plan, rate: 50/minute, algorithm: fixed_window}
      per_ip: {by: ip, rate: 100/minute}
      slots: {by: api_key, concurrency: 3}
    plans:
      free: {limits: {api: 5/minute, slots: 1}}
      pro: {limits: {api: 10/minute}}
    anonymous_plan: free
    keys:
      - {key: demo-free, id: f1, plan: free}
      - {key: demo-other, id: f2, plan: free}
    categories:
      - {name: api, match: /api/**, charge: [api, daily, per_plan, per_ip, slots]}
      - {name: search, match: /search, charge: {api: 2}}
      - {name: health, match: /health, exempt: true}
    """),
    name="u",
)

StoreMaker = Callable[[Clock], Store]


def memory(clock: Clock) -> Store:
    return MemoryStore(clock=clock)


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreMaker]:
    """A store of each kind; ``POLICY`` counts a decision by several identities, which a
    Cluster refuses: ``cluster_store`` has tests of its own below."""
    if request.param == "memory":
        yield memory
        return
    async for maker in _redis_stores(request.getfixturevalue("redis_url")):
        yield maker


@pytest.fixture
async def cluster_store(redis_cluster_url: str) -> AsyncIterator[StoreMaker]:
    async for maker in _redis_stores(redis_cluster_url):
        yield maker


async def _redis_stores(url: str) -> AsyncIterator[StoreMaker]:
    made: list[RedisStore] = []

    def redis_store(clock: Clock) -> Store:
        store = RedisStore.from_url(url, timeout=2.0, clock=clock, on_error="closed")
        made.append(store)
        return store

    yield redis_store
    for store in made:
        store.close()
        await store.aclose()


def by_name(usage: list[LimitUsage] | None) -> dict[str, tuple[int, int, float | None]]:
    assert usage is not None
    return {item.name: (item.limit, item.remaining, item.reset_at) for item in usage}


def api(limiter: Limiter, key: str, path: str = "/api/x", times: int = 1) -> list[int]:
    return [
        limiter.check(path=path, headers={"X-API-Key": key}, client_ip="203.0.113.7").status_code
        for _ in range(times)
    ]


def test_usage_reads_every_limit_the_key_alone_is_counted_by_and_consumes_nothing(
    make_store: StoreMaker,
) -> None:
    clock = Clock(T0)
    limiter = Limiter(POLICY, make_store(clock))
    assert api(limiter, "demo-free", times=2) == [200, 200]
    assert api(limiter, "demo-free", "/search") == [200]  # api charged 2 more
    clock.t = T0 + 10
    usage = limiter.usage("f1")
    assert by_name(usage) == {
        "api": (5, 1, T0 + 60),
        "daily": (1000, 998, T0 + 86400),
        "per_plan": (50, 48, T0 + 60),
        "slots": (1, 1, None),  # the checks took no lease
    }
    assert usage is not None
    assert {item.name: item.shared for item in usage}["per_plan"] is True
    assert {item.name: item.window for item in usage} == {
        "api": 60.0, "daily": 86400.0, "per_plan": 60.0, "slots": None
    }  # fmt: skip
    assert limiter.usage("f1") == usage  # reading took nothing
    assert api(limiter, "demo-free") == [200]
    assert api(limiter, "demo-free") == [429]  # api 5/minute: 2 + 2 + 1


def test_usage_counts_the_slots_a_key_holds(make_store: StoreMaker) -> None:
    limiter = Limiter(POLICY, make_store(Clock(T0)))
    decision = limiter.check(path="/api/x", headers={"X-API-Key": "demo-free"}, lease=True)
    assert decision.allowed
    assert by_name(limiter.usage("f1"))["slots"] == (1, 0, None)
    limiter.release(decision)
    assert by_name(limiter.usage("f1"))["slots"] == (1, 1, None)


def test_usage_and_reset_of_an_unknown_key_are_none(make_store: StoreMaker) -> None:
    limiter = Limiter(POLICY, make_store(Clock(T0)))
    assert limiter.usage("nobody") is None
    assert limiter.reset_key("nobody") is None


def test_reset_gives_the_key_its_quota_back_and_leaves_shared_counters_and_others(
    make_store: StoreMaker,
) -> None:
    limiter = Limiter(POLICY, make_store(Clock(T0)))
    assert api(limiter, "demo-free", times=6) == [200] * 5 + [429]
    assert api(limiter, "demo-other", times=2) == [200, 200]
    assert limiter.reset_key("f1") == 2  # api and daily; per_plan is the plan's
    assert by_name(limiter.usage("f1")) == {
        "api": (5, 5, T0),
        "daily": (1000, 1000, T0),
        "per_plan": (50, 43, T0 + 60),
        "slots": (1, 1, None),
    }
    assert by_name(limiter.usage("f2"))["api"] == (5, 3, T0 + 60)
    assert api(limiter, "demo-free", times=6) == [200] * 5 + [429]
    assert limiter.reset_key("f1") == 2
    assert limiter.reset_key("f1") == 0  # nothing left to forget


def test_a_registry_key_is_read_and_reset_with_its_own_limits(make_store: StoreMaker) -> None:
    limiter = Limiter(POLICY, make_store(Clock(T0)))
    vip = KeyEntry(
        "vip", hash_api_key("rk_vip"), "pro", limits=key_limits(POLICY, {"api": "3/minute"})
    )
    limiter.use_keys([vip])
    assert api(limiter, "rk_vip", times=4) == [200, 200, 200, 429]
    assert by_name(limiter.usage("vip"))["api"][:2] == (3, 0)
    assert limiter.reset_key("vip") == 2
    assert api(limiter, "rk_vip") == [200]
    limiter.use_keys([])  # revoked: no more usage
    assert limiter.usage("vip") is None


def test_a_reset_forgets_the_refusals_the_limiter_remembered(make_store: StoreMaker) -> None:
    limiter = Limiter(POLICY, make_store(Clock(T0)), remember_refusals=True)
    assert api(limiter, "demo-free", times=6) == [200] * 5 + [429]
    assert api(limiter, "demo-free") == [429]  # remembered: answered without the store
    limiter.reset_key("f1")
    assert api(limiter, "demo-free") == [200]


async def test_the_async_limiter_reads_and_resets_alike(make_store: StoreMaker) -> None:
    limiter = AsyncLimiter(POLICY, make_store(Clock(T0)))
    headers = {"X-API-Key": "demo-free"}
    held = await limiter.check(path="/api/x", headers=headers, lease=True)
    for _ in range(4):
        assert (await limiter.check(path="/api/x", headers=headers)).allowed
    assert by_name(await limiter.usage("f1")) == {
        "api": (5, 0, T0 + 60),
        "daily": (1000, 995, T0 + 86400),
        "per_plan": (50, 45, T0 + 60),
        "slots": (1, 0, None),
    }
    assert await limiter.reset_key("f1") == 2
    assert by_name(await limiter.usage("f1"))["api"] == (5, 5, T0)
    await limiter.release(held)
    assert await limiter.usage("nobody") is None
    assert await limiter.reset_key("nobody") is None


def test_the_stores_reset_exactly_the_counters_named(make_store: StoreMaker) -> None:
    clock = Clock(T0)
    store = make_store(clock)
    spec = next(iter(Limiter(POLICY, store).compiled.plans["free"].specs["api"][0]))
    charges = [(spec, "u:api:{a}", 1, False), (spec, "u:api:{b}", 1, False)]
    assert store.apply(charges)[0]
    assert store.reset([(spec, "u:api:{a}"), (spec, "u:api:{nobody}")]) == 1
    results = store.apply(charges, consume=False)[1]
    assert [remaining for _, remaining, _, _ in results] == [5, 4]


def test_a_store_without_reset_is_told_so() -> None:
    class Plain(MemoryStore):
        reset = None  # type: ignore[assignment]

    limiter = Limiter(POLICY, Plain(clock=Clock(T0)))
    with pytest.raises(TypeError, match="Plain cannot reset counters"):
        limiter.reset_key("f1")


#: what a Cluster serves: every counter of a decision counted by the key
ONE_SLOT_POLICY = policy_from_text(
    textwrap.dedent("""\
    version: 1
    name: c
    limits:
      api: {by: api_key, rate: 5/minute, algorithm: fixed_window}
      daily: {by: api_key, rate: 1000/day, algorithm: fixed_window}
      slots: {by: api_key, concurrency: 1}
    keys:
      - {key: demo-a, id: a}
      - {key: demo-b, id: b}
    plans:
      free: {}
    categories:
      - {name: api, match: /api/**, charge: [api, daily, slots]}
    """),
    name="c",
)


@pytest.mark.redis
def test_on_a_cluster_usage_and_reset_work_key_by_key(cluster_store: StoreMaker) -> None:
    store = cluster_store(Clock(T0))
    limiter = Limiter(ONE_SLOT_POLICY, store)
    assert api(limiter, "demo-a", times=6) == [200] * 5 + [429]
    assert api(limiter, "demo-b", times=2) == [200, 200]
    assert by_name(limiter.usage("a")) == {
        "api": (5, 0, T0 + 60), "daily": (1000, 995, T0 + 86400), "slots": (1, 1, None)
    }  # fmt: skip
    assert limiter.reset_key("a") == 2
    assert by_name(limiter.usage("a"))["api"] == (5, 5, T0)
    assert by_name(limiter.usage("b"))["api"] == (5, 3, T0 + 60)
    # one call naming counters on several slots: each slot's node deletes its own
    charges = limiter.key_counters("a"), limiter.key_counters("b")
    counters = [pair for found in charges if found is not None for pair in found.own]
    api(limiter, "demo-a")
    assert store.reset(counters) == 4  # type: ignore[attr-defined]

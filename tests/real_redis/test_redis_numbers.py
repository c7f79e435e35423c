"""Numbers on real Redis: refused past the bounds, exact up to them, the log to the µs.

The Lua script computes with doubles, exact below 2**53. Rates past the bounds
of algorithms/bounds.py are refused before Redis is asked; up to them Redis
answers as the memory store does: ``allowed`` and ``remaining`` alike, times
rounded up to the ms (to the µs for the sliding log) where memory has the ns.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

import ratekeeper.stores.redis.store as redis_module
from ratekeeper import MemoryStore, RateLimiter, RedisStore
from ratekeeper.algorithms import ALGORITHMS
from ratekeeper.rates import Rate, parse_rates
from ratekeeper.stores import LimitSpec, Store
from support.redis_servers import RedisServer

pytestmark = pytest.mark.redis

T0_MS = 1_700_006_400_000  # 2023-11-15T00:00:00Z, a whole day
NS_PER_MS = 1_000_000
T0_NS = T0_MS * NS_PER_MS


class MicrosecondClock:
    """Epoch seconds as an exact ``Fraction``, set in whole microseconds."""

    def __init__(self, us: int = T0_MS * 1000) -> None:
        self.us = us

    def __call__(self) -> Fraction:
        return Fraction(self.us, 1_000_000)


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Builds the store under test on a clock: memory, or a real Redis."""
    made: list[RedisStore] = []

    def make(clock: MicrosecondClock) -> Store:
        if request.param == "memory":
            return MemoryStore(clock=clock)  # type: ignore[arg-type]  # an exact Fraction
        url = request.getfixturevalue("redis_url")
        store = RedisStore.from_url(url, clock=clock, timeout=2.0)  # type: ignore[arg-type]
        made.append(store)
        return store

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for store in made:
        store.close()


# refused past the bounds


@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_a_rate_past_its_bound_is_refused_before_redis_is_asked(
    redis_url: str, redis_server: RedisServer, on_error: Any
) -> None:
    """Once, a 26-digit window made every script call fail: fail-open admitted everyone,
    fail-closed refused everyone; a 32-digit limit answered remaining -2**63."""
    store = RedisStore.from_url(redis_url, on_error=on_error, timeout=2.0)
    limiter = RateLimiter(store)
    with pytest.raises(ValueError, match="window of 99,999,999,999,999,999,999 days is longer"):
        limiter.hit("k", "10 per 99999999999999999999 days")
    with pytest.raises(ValueError, match="limit 99,999,999,999,999,999,999,999,999,999,999 is "):
        limiter.hit("k", "99999999999999999999999999999999/second")
    with pytest.raises(ValueError, match="cost 100,001 is above 100,000, the most sliding_log"):
        limiter.hit("k", "10/minute", cost=100_001, algorithm="sliding_log")
    assert store.errors == 0
    with redis_server.client() as client:
        assert client.keys("*") == []
    store.close()


# exact up to them


def _spec(algorithm: str, rate: str) -> LimitSpec:
    return LimitSpec.of(ALGORITHMS[algorithm], parse_rates(rate)[0])


def test_token_bucket_at_a_billion_a_day_counts_every_unit(
    make_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three hits of 3 at 10**9/day (the issue's case): 9 units gone on both stores.

    9 units owed at 10**9/day is a TTL under 1 ms of Redis's real clock: on a busy
    machine the key expired between the fake clock's steps (CI saw 999,999,997 for the
    third hit), so the script runs without its TTLs here, as in the random trials below.
    """
    monkeypatch.setattr(redis_module, "_script_text", _script_without_ttls)
    spec = _spec("token_bucket", "1000000000/day")
    store = make_store(MicrosecondClock())
    results = [store.apply_one(spec, "k", 3) for _ in range(3)]
    assert [remaining for _, remaining, _, _ in results] == [999_999_997, 999_999_994, 999_999_991]
    resets_ns = [reset - T0_NS for _, _, reset, _ in results]
    if make_store.kind == "memory":
        assert resets_ns == [259_200, 518_400, 777_600]  # 3, 6, 9 x 86.4 µs
    else:
        assert resets_ns == [NS_PER_MS] * 3  # the same, rounded up to the ms


def test_token_bucket_never_reports_a_negative_remaining_past_2_53(make_store: Any) -> None:
    """At 123,456,789/day the TAT x limit passes 2**53: Redis used to round the last unit
    away and admit a hit with nothing left (``remaining: -1``)."""
    spec = _spec("token_bucket", "123456789/day")
    store = make_store(MicrosecondClock())
    answers = [store.apply([(spec, "k", cost, False)]) for cost in (61_728_394, 61_728_394, 1, 1)]
    rows = [(admitted, result[1], result[2] - T0_NS, result[3]) for admitted, (result,) in answers]
    if make_store.kind == "memory":
        assert rows == [
            (True, 61_728_395, 43_199_999_650_080, 0),
            (True, 1, 86_399_999_300_160, 0),
            (True, 0, 86_400_000_000_000, 0),
            (False, 0, 699_841, 699_841),  # one interval: 0.699841 ms
        ]
    else:
        assert rows == [
            (True, 61_728_395, 43_200_000_000_000, 0),
            (True, 1, 86_400_000_000_000, 0),
            (True, 0, 86_400_000_000_000, 0),
            (False, 0, NS_PER_MS, NS_PER_MS),
        ]


def test_failing_local_holds_each_share_of_a_bucket_within_the_bounds(
    restartable_redis: RedisServer,
) -> None:
    """3/day with a burst of 1,095 refills in 365 days; two instances' share, 1/day
    with 547, would take 547 days (a ValueError while Redis is down): the share's
    burst is held to what refills in 365 days."""
    store = RedisStore.from_url(restartable_redis.url, on_error="local", instances=2, timeout=0.2)
    limiter = RateLimiter(store, algorithm="token_bucket")
    rate = Rate(3, 86_400 * 1_000_000_000, 1_095)
    assert limiter.hit("k", rate).remaining == 1_094  # from Redis
    restartable_redis.stop()
    assert limiter.hit("k", rate, cost=365).remaining == 0  # this instance's: 1/day, 365
    assert not limiter.hit("k", rate).allowed
    restartable_redis.start()
    store.close()


# the sliding log to the microsecond


def test_sliding_log_never_admits_more_than_its_limit_within_one_window(
    make_store: Any,
) -> None:
    """The issue's run at 100/second: the 1st unit at 957.2 ms, the 101st tried at 1957.0 ms.

    Whole-ms stamps dropped the first unit at 1957.0 ms (957 <= 1957 - 1000):
    101 admissions within 999.8 ms. Now it counts until 1957.2 ms exactly.
    """
    spec = _spec("sliding_log", "100/second")
    clock = MicrosecondClock()
    store = make_store(clock)
    clock.us += 957_200
    assert store.apply_one(spec, "k", 1) == (True, 99, T0_NS + 1_957_200_000, 0)
    clock.us += 500
    assert [store.apply_one(spec, "k", 1)[:2] for _ in range(99)] == [
        (True, remaining) for remaining in range(98, -1, -1)
    ]
    clock.us = T0_MS * 1000 + 1_957_000
    # the 101st within 999.8 ms: refused until the 1st is a whole second old
    assert store.apply_one(spec, "k", 1) == (False, 0, T0_NS + 1_957_200_000, 200_000)
    clock.us += 199
    assert store.apply_one(spec, "k", 1) == (False, 0, T0_NS + 1_957_200_000, 1_000)
    clock.us += 1
    assert store.apply_one(spec, "k", 1) == (True, 0, T0_NS + 2_957_200_000, 0)
    assert store.apply_one(spec, "k", 1) == (False, 0, T0_NS + 1_957_700_000, 500_000)


def test_a_unit_is_stamped_at_the_end_of_the_microsecond_redis_time_reports(
    redis_url: str, redis_server: RedisServer
) -> None:
    """TIME truncates to the µs: a stamp of the µs itself could leave the log up to 1 µs
    early, so the script stamps the µs after it (and never earlier than the admission)."""
    store = RedisStore.from_url(redis_url, timeout=2.0)  # the server's clock
    limiter = RateLimiter(store, algorithm="sliding_log")
    with redis_server.client() as client:
        seconds, micros = client.time()
        before = seconds * 1_000_000 + micros
        decision = limiter.hit("k", "5/second")
        assert decision.allowed
        seconds, micros = client.time()
        after = seconds * 1_000_000 + micros
        (stamp,) = (int(value) for value in client.lrange("rk:l1000:{k}", 0, -1))
        assert 0 < client.pttl("rk:l1000:{k}") <= 1_001  # the window and 1 ms
    assert before + 1 <= stamp <= after + 1
    assert decision.statuses[0].reset_at * 1e6 == pytest.approx(stamp + 1_000_000, abs=0.5)
    store.close()


# memory and Redis agree on random rates up to the bounds

_LIMITS = {"fixed_window": 10**12, "sliding_window": 10**12, "token_bucket": 10**12}
_LIMITS["sliding_log"] = 10**5
_WINDOWS_MS = [1_000, 60_000, 86_400_000, 31_536_000_000]
_SCRIPT_TEXT = redis_module._script_text


def _script_without_ttls() -> str:
    """The decide script with its counters' TTLs taken out: Redis runs them on its own
    clock, not the fake one these tests move by hours and days, and a 1 ms TTL could
    expire between steps; what is compared here is the arithmetic (every key has a TTL:
    test_redis_store.py). Leases and lockouts keep theirs: no step runs here."""
    text = _SCRIPT_TEXT()
    for ttl in (r", 'PX', ttls\[i\]", r"call\('PEXPIRE', key, window \+ 1\)"):
        text, found = re.subn(ttl, "", text)
        assert found == 1, ttl
    return text


def _up(ns: int, unit: int) -> int:
    return -(-ns // unit) * unit


@pytest.mark.parametrize("seed", range(3))
def test_redis_answers_as_memory_does_at_random_rates_up_to_the_bounds(
    redis_url: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Every algorithm, rates from 1 to the bound, windows to 365 days, costs from 0 to
    the bound, hits and peeks: the same ``allowed`` and ``remaining``, and Redis's times
    are memory's rounded up to the ms (to the µs for the sliding log)."""
    monkeypatch.setattr(redis_module, "_script_text", _script_without_ttls)
    rng = random.Random(seed)
    client = redis_server.client()
    for trial in range(30):
        name = rng.choice(sorted(_LIMITS))
        most = _LIMITS[name]
        window_ms = rng.choice([*_WINDOWS_MS, rng.randrange(1_000, 31_536_000_001)])
        limit = rng.choice([1, 3, most, most - 1, rng.randrange(1, most + 1), 10**9])
        limit = min(limit, most)
        capacity = limit
        if name == "token_bucket" and rng.random() < 0.5:  # bursts that refill in <= 365 days
            top = min(most, 31_536_000_000 * limit // window_ms)
            capacity = rng.choice([1, top, rng.randrange(1, top + 1)])
        spec = LimitSpec(ALGORITHMS[name], limit, window_ms * NS_PER_MS, capacity, f"s{trial}")
        sub_ms = name == "sliding_log"
        clock = MicrosecondClock((T0_MS + rng.randrange(10**10)) * 1000)
        memory = MemoryStore(clock=clock)  # type: ignore[arg-type]
        redis = RedisStore.from_url(redis_url, clock=clock, timeout=2.0)  # type: ignore[arg-type]
        client.flushall()
        unit = 1_000 if name == "sliding_log" else NS_PER_MS
        top = min(most, capacity if name == "token_bucket" else limit)
        for step in range(15):
            gap_ms = rng.choice([0, 0, 1, 7, window_ms - 1, window_ms, rng.randrange(window_ms)])
            clock.us += gap_ms * 1000 + (rng.randrange(1000) if sub_ms else 0)
            cost = rng.choice([0, 1, 3, top, top - 1, rng.randrange(1, top + 1), most])
            consume = rng.random() < 0.8
            admitted, (expected,) = memory.apply([(spec, "k", cost, False)], consume)
            rounded = (*expected[:2], _up(expected[2], unit), _up(expected[3], unit))
            where = f"trial {trial} {spec} step {step} cost {cost} consume {consume}"
            assert redis.apply([(spec, "k", cost, False)], consume) == (admitted, [rounded]), where
        redis.close()
    client.close()

"""MemoryStore: expiry, the max_keys bound, LRU eviction, thread and asyncio safety.

Every test runs on a fake clock; time moves by assignment, never by sleeping.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from ratekeeper import (
    ALGORITHMS,
    AsyncRateLimiter,
    LockoutRule,
    MemoryStats,
    MemoryStore,
    RateLimiter,
    Store,
)
from support.clock import Clock

T0 = 1_728_000.0  # a day boundary: every fixed window used here starts there
ALGORITHM_NAMES = sorted(ALGORITHMS)


def limiter(
    clock: Clock, max_keys: int = 1_000_000, algorithm: str = "fixed_window"
) -> RateLimiter:
    return RateLimiter(MemoryStore(clock=clock, max_keys=max_keys), algorithm=algorithm)


def stats(rl: RateLimiter) -> MemoryStats:
    store = rl.store
    assert isinstance(store, MemoryStore)
    return store.stats()


def unique_keys(count: int, seed: int = 7) -> list[str]:
    """``count`` distinct random keys, the same on every run."""
    return [f"ip:{n:09d}" for n in random.Random(seed).sample(range(10**9), count)]


# --- basics ---------------------------------------------------------------------------


def test_memory_store_satisfies_the_store_protocol() -> None:
    assert isinstance(MemoryStore(), Store)


def test_now_ns_is_the_injected_clock_in_integer_nanoseconds(clock: Clock) -> None:
    store = MemoryStore(clock=clock)

    assert store.now_ns() == 1_728_000_000_000_000
    clock.t = T0 + 0.25
    assert store.now_ns() == 1_728_000_250_000_000


def test_default_clock_is_wall_time() -> None:
    before = time.time_ns()
    now = MemoryStore().now_ns()
    after = time.time_ns()

    assert before <= now <= after


def test_max_keys_below_one_is_a_value_error_naming_max_keys() -> None:
    with pytest.raises(ValueError, match="max_keys must be at least 1, got 0"):
        MemoryStore(max_keys=0)


def test_fresh_store_reports_empty_stats(clock: Clock) -> None:
    store = MemoryStore(clock=clock, max_keys=10)

    assert store.stats() == MemoryStats(keys=0, max_keys=10, evictions=0, expired=0)
    assert repr(store) == "MemoryStore(keys=0, max_keys=10)"


def test_each_rate_of_a_key_is_one_tracked_key(clock: Clock) -> None:
    rl = limiter(clock)

    rl.hit("user:1", "5/second;10/minute;100/hour")
    rl.hit("user:1", "5/second;10/minute;100/hour")
    rl.hit("user:2", "5/second")

    assert stats(rl) == MemoryStats(keys=4, max_keys=1_000_000, evictions=0, expired=0)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_peeks_and_denied_hits_never_create_state(clock: Clock, algorithm: str) -> None:
    rl = limiter(clock, algorithm=algorithm)

    for key in unique_keys(100):
        rl.peek(key, "5/second")
        rl.hit(key, "5/second", cost=6)  # more than the limit: denied

    assert stats(rl).keys == 0


# --- expiry -----------------------------------------------------------------------------

# one hit of "5/minute" at T0: seconds until the key's state says nothing any more
EXPIRES_AFTER = {
    "sliding_window": 120.0,  # the hit weighs on the next window too
    "sliding_log": 60.0,  # the unit leaves the log
    "token_bucket": 12.0,  # one unit refills in 60 / 5 s
    "fixed_window": 60.0,  # the aligned window ends
}


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_key_expires_exactly_when_its_window_is_over(clock: Clock, algorithm: str) -> None:
    rl = limiter(clock, algorithm=algorithm)
    rl.hit("old", "5/minute")

    clock.t = T0 + EXPIRES_AFTER[algorithm] - 0.001
    assert rl.peek("old", "5/minute").remaining == 4
    rl.hit("probe", "5/minute")
    assert stats(rl) == MemoryStats(keys=2, max_keys=1_000_000, evictions=0, expired=0)

    clock.t = T0 + EXPIRES_AFTER[algorithm]
    rl.hit("new", "5/minute")
    # a fixed window ends for every key at once: the probe, written in it, goes too
    expired = 2 if algorithm == "fixed_window" else 1
    assert stats(rl) == MemoryStats(
        keys=3 - expired, max_keys=1_000_000, evictions=0, expired=expired
    )
    assert rl.peek("old", "5/minute").remaining == 5


def test_stats_keys_drop_as_new_keys_arrive_after_the_window(clock: Clock) -> None:
    rl = limiter(clock, algorithm="sliding_log")
    for n in range(10):
        rl.hit(f"old:{n}", "5/minute")
    clock.t = T0 + 60.0

    counts = []
    for n in range(10):
        rl.hit(f"new:{n}", "5/minute")
        counts.append(stats(rl).keys)

    # each insert drops up to two expired keys from the least recently used end
    assert counts == [9, 8, 7, 6, 5, 6, 7, 8, 9, 10]
    assert stats(rl) == MemoryStats(keys=10, max_keys=1_000_000, evictions=0, expired=10)


def test_flood_of_short_lived_keys_expires_them_instead_of_evicting(clock: Clock) -> None:
    rl = limiter(clock, max_keys=100, algorithm="sliding_log")

    for n, key in enumerate(unique_keys(1000)):
        clock.t = T0 + n * 0.125  # eight new keys a second, each kept one second
        rl.hit(key, "5/second")
        assert stats(rl).keys <= 8

    assert stats(rl) == MemoryStats(keys=8, max_keys=100, evictions=0, expired=992)


def test_full_store_sweeps_expired_keys_of_every_window_before_evicting(clock: Clock) -> None:
    rl = limiter(clock, max_keys=4)
    for n in range(4):
        rl.hit(f"short:{n}", "5/second")
    clock.t = T0 + 2.0

    rl.hit("long", "5/hour")  # another window: its own table holds nothing to trim

    assert stats(rl) == MemoryStats(keys=1, max_keys=4, evictions=0, expired=4)


# --- the max_keys bound and LRU eviction ----------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_max_keys_bound_holds_under_a_flood_of_ten_times_as_many_random_keys(
    clock: Clock, algorithm: str
) -> None:
    rl = limiter(clock, max_keys=100, algorithm=algorithm)
    flood = unique_keys(1000)

    for key in flood:
        rl.hit(key, "5/minute")
        assert stats(rl).keys <= 100

    assert stats(rl) == MemoryStats(keys=100, max_keys=100, evictions=900, expired=0)
    assert rl.peek(flood[-1], "5/minute").remaining == 4  # the newest keys are kept
    assert rl.peek(flood[0], "5/minute").remaining == 5  # the oldest were evicted


def test_max_keys_bound_holds_across_several_windows(clock: Clock) -> None:
    rl = limiter(clock, max_keys=100)

    for key in unique_keys(1000):
        rl.hit(key, "5/second;10/minute;100/hour")
        assert stats(rl).keys <= 100

    assert stats(rl).keys == 100


def test_full_store_evicts_the_least_recently_used_key(clock: Clock) -> None:
    rl = limiter(clock, max_keys=3)
    for key in ("a", "b", "c"):
        rl.hit(key, "5/minute")
    rl.hit("a", "5/minute")  # a is used again: b is now the least recently used

    rl.hit("d", "5/minute")

    assert stats(rl) == MemoryStats(keys=3, max_keys=3, evictions=1, expired=0)
    remaining = {key: rl.peek(key, "5/minute").remaining for key in "abcd"}
    assert remaining == {"a": 3, "b": 5, "c": 4, "d": 4}


def test_denied_hits_keep_a_key_recently_used(clock: Clock) -> None:
    rl = limiter(clock, max_keys=3)
    for _ in range(5):
        rl.hit("abuser", "5/minute")
    rl.hit("b", "5/minute")
    rl.hit("c", "5/minute")
    assert rl.hit("abuser", "5/minute").allowed is False  # still hammering

    rl.hit("d", "5/minute")

    assert stats(rl).evictions == 1
    assert rl.hit("abuser", "5/minute").allowed is False  # its count was not reset
    assert rl.peek("b", "5/minute").remaining == 5  # b was evicted instead


def test_evictions_are_counted_in_stats(clock: Clock) -> None:
    rl = limiter(clock, max_keys=5)

    for n in range(12):
        rl.hit(f"k:{n}", "5/minute")

    assert stats(rl) == MemoryStats(keys=5, max_keys=5, evictions=7, expired=0)


def test_eviction_drops_an_expired_key_rather_than_the_least_recently_used_live_key(
    clock: Clock,
) -> None:
    rl = limiter(clock, max_keys=3, algorithm="sliding_log")
    rl.hit("a", "5/minute")
    clock.t = T0 + 30.0
    rl.hit("b", "5/minute")
    rl.hit("c", "5/minute")
    clock.t = T0 + 60.0  # a has expired; b and c are live

    rl.hit("d", "5/minute")

    assert stats(rl) == MemoryStats(keys=3, max_keys=3, evictions=0, expired=1)
    assert {key: rl.peek(key, "5/minute").remaining for key in "bcd"} == {
        "b": 4,
        "c": 4,
        "d": 4,
    }


def test_eviction_drops_expired_keys_of_another_window_before_a_live_key(clock: Clock) -> None:
    rl = limiter(clock, max_keys=3)
    for key in ("a", "b", "c"):
        rl.hit(key, "5/second")
    clock.t = T0 + 0.5
    rl.hit("x", "5/hour")  # full, nothing expired yet: evicting a live key is right
    assert stats(rl).evictions == 1
    clock.t = T0 + 1.25  # b and c (5/second) have expired; x is live

    rl.hit("y", "5/hour")

    after = stats(rl)
    assert after.evictions == 1  # still only a's
    assert after.keys + after.expired == 4  # five keys stored, one evicted: the rest expired
    assert (rl.peek("x", "5/hour").remaining, rl.peek("y", "5/hour").remaining) == (4, 4)


def test_eviction_drops_an_expired_key_behind_a_live_one_before_evicting(clock: Clock) -> None:
    # token bucket "5/minute": a cost-5 key expires after 60 s, a cost-1 key after 12 s
    rl = limiter(clock, max_keys=4, algorithm="token_bucket")
    rl.hit("x", "5/minute", cost=5)
    rl.hit("y", "5/minute", cost=5)
    rl.hit("small", "5/minute", cost=1)
    rl.hit("z", "5/minute", cost=5)
    clock.t = T0 + 11.5
    rl.hit("w", "5/minute", cost=5)  # full, nothing expired yet: x is evicted, rightly
    assert stats(rl).evictions == 1
    clock.t = T0 + 12.0  # small has expired; y, z and w are live

    rl.hit("v", "5/minute", cost=5)

    assert stats(rl) == MemoryStats(keys=4, max_keys=4, evictions=1, expired=1)
    assert rl.peek("y", "5/minute").remaining == 1  # kept: 12 s have refilled one unit


def test_hot_key_that_keeps_being_used_survives_a_flood(clock: Clock) -> None:
    rl = limiter(clock, max_keys=100)
    hits = 0
    for n, key in enumerate(unique_keys(1000)):
        if n % 10 == 0:
            rl.hit("hot", "1000/hour")
            hits += 1
        rl.hit(key, "1000/hour")

    assert hits == 100
    assert rl.peek("hot", "1000/hour").remaining == 900  # not one hit forgotten
    assert stats(rl) == MemoryStats(keys=100, max_keys=100, evictions=901, expired=0)


# --- concurrency ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_threads_hammering_one_key_admit_exactly_the_limit(clock: Clock, algorithm: str) -> None:
    rl = limiter(clock, algorithm=algorithm)
    threads, per_thread = 8, 250
    start = threading.Barrier(threads)
    admitted = [0] * threads

    def hammer(index: int) -> None:
        start.wait()
        admitted[index] = sum(rl.hit("hot", "1000/minute").allowed for _ in range(per_thread))

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sum(admitted) == 1000
    assert rl.peek("hot", "1000/minute").remaining == 0


def test_threads_flooding_distinct_keys_keep_the_bound_and_count_every_eviction(
    clock: Clock,
) -> None:
    rl = limiter(clock, max_keys=100)
    threads = 8
    keys = unique_keys(threads * 500)
    start = threading.Barrier(threads)

    def flood(index: int) -> None:
        start.wait()
        for key in keys[index::threads]:
            rl.hit(key, "5/minute")

    workers = [threading.Thread(target=flood, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert stats(rl) == MemoryStats(keys=100, max_keys=100, evictions=3900, expired=0)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
async def test_asyncio_tasks_admit_exactly_the_limit(clock: Clock, algorithm: str) -> None:
    rl = AsyncRateLimiter(MemoryStore(clock=clock), algorithm=algorithm)

    decisions = await asyncio.gather(*(rl.hit("hot", "1000/minute") for _ in range(2000)))

    assert sum(d.allowed for d in decisions) == 1000
    assert (await rl.peek("hot", "1000/minute")).remaining == 0


# --- clear ------------------------------------------------------------------------------


def test_clear_forgets_every_counter_lease_and_lockout(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    rl = RateLimiter(store, algorithm="fixed_window")
    for _ in range(5):
        rl.hit("user:1", "5/minute;10/hour")
    store.leases.acquire("conn:1", 1, 30.0)
    rule = LockoutRule(threshold=1, window=60.0, block=300.0)
    store.lockouts.record_failure("ip:1", rule)

    store.clear()

    assert store.stats().keys == 0
    assert [s.remaining for s in rl.peek("user:1", "5/minute;10/hour").statuses] == [5, 10]
    assert store.leases.in_use("conn:1") == 0
    assert store.leases.acquire("conn:1", 1, 30.0).acquired is True
    assert store.lockouts.status("ip:1").blocked is False
    assert store.lockouts.blocks() == []


def test_store_keeps_limiting_after_clear(clock: Clock) -> None:
    rl = limiter(clock, max_keys=2)
    for n in range(5):
        rl.hit(f"k:{n}", "5/minute")
    rl.store.clear()  # type: ignore[attr-defined]

    for _ in range(5):
        rl.hit("user:1", "5/minute")

    assert rl.hit("user:1", "5/minute").allowed is False
    assert stats(rl).keys == 1

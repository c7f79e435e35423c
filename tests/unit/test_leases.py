"""Concurrency leases of the memory store: "at most N requests of this key in flight".

Every test runs on a fake clock; time moves by assignment, never by sleeping.
"""

from __future__ import annotations

import threading

import pytest

from ratekeeper import LeaseGrant, MemoryStore
from support.clock import Clock

T0 = 1_728_000.0


def test_leases_are_granted_up_to_the_cap_then_refused(store: MemoryStore) -> None:
    grants = [store.leases.acquire("conn:1", 3, 30.0) for _ in range(4)]

    assert [(g.acquired, g.limit, g.in_use) for g in grants] == [
        (True, 3, 1),
        (True, 3, 2),
        (True, 3, 3),
        (False, 3, 3),
    ]
    assert grants[3] == LeaseGrant(lease_id=None, limit=3, in_use=3)
    assert store.leases.in_use("conn:1") == 3


def test_every_granted_lease_has_its_own_id(store: MemoryStore) -> None:
    grants = [store.leases.acquire("conn:1", 100, 30.0) for _ in range(100)]

    ids = [g.lease_id for g in grants]
    assert None not in ids
    assert len(set(ids)) == 100


def test_release_frees_a_slot_for_the_next_request(store: MemoryStore) -> None:
    first, _second = (store.leases.acquire("conn:1", 2, 30.0) for _ in range(2))
    assert store.leases.acquire("conn:1", 2, 30.0).acquired is False
    assert first.lease_id is not None

    assert store.leases.release("conn:1", first.lease_id) is True

    assert store.leases.in_use("conn:1") == 1
    grant = store.leases.acquire("conn:1", 2, 30.0)
    assert (grant.acquired, grant.in_use) == (True, 2)


def test_keys_have_independent_caps(store: MemoryStore) -> None:
    assert store.leases.acquire("conn:1", 1, 30.0).acquired is True

    assert store.leases.acquire("conn:1", 1, 30.0).acquired is False
    assert store.leases.acquire("conn:2", 1, 30.0).acquired is True
    assert (store.leases.in_use("conn:1"), store.leases.in_use("conn:2")) == (1, 1)


def test_lease_of_a_holder_that_died_stops_counting_exactly_after_ttl(
    store: MemoryStore, clock: Clock
) -> None:
    store.leases.acquire("conn:1", 2, 30.0)
    clock.t = T0 + 10.0
    store.leases.acquire("conn:1", 2, 30.0)

    clock.t = T0 + 29.999
    assert store.leases.in_use("conn:1") == 2
    assert store.leases.acquire("conn:1", 2, 30.0).acquired is False
    clock.t = T0 + 30.0  # the first lease has expired; the second lives until T0+40
    assert store.leases.in_use("conn:1") == 1
    grant = store.leases.acquire("conn:1", 2, 30.0)
    assert (grant.acquired, grant.in_use) == (True, 2)


def test_a_cap_full_of_dead_leases_grants_again_after_ttl(store: MemoryStore, clock: Clock) -> None:
    for _ in range(3):
        store.leases.acquire("conn:1", 3, 5.0)
    clock.t = T0 + 5.0

    grant = store.leases.acquire("conn:1", 3, 5.0)

    assert (grant.acquired, grant.limit, grant.in_use) == (True, 3, 1)


def test_release_of_an_unknown_lease_returns_false(store: MemoryStore) -> None:
    store.leases.acquire("conn:1", 2, 30.0)

    assert store.leases.release("conn:1", "not-a-lease") is False
    assert store.leases.release("conn:never-seen", "not-a-lease") is False
    assert store.leases.in_use("conn:1") == 1


def test_second_release_of_one_lease_returns_false(store: MemoryStore) -> None:
    grant = store.leases.acquire("conn:1", 2, 30.0)
    assert grant.lease_id is not None

    assert store.leases.release("conn:1", grant.lease_id) is True
    assert store.leases.release("conn:1", grant.lease_id) is False


def test_release_under_another_key_returns_false_and_keeps_the_lease(
    store: MemoryStore,
) -> None:
    grant = store.leases.acquire("conn:1", 2, 30.0)
    assert grant.lease_id is not None

    assert store.leases.release("conn:2", grant.lease_id) is False
    assert store.leases.in_use("conn:1") == 1


def test_release_of_an_expired_lease_already_dropped_returns_false(
    store: MemoryStore, clock: Clock
) -> None:
    grant = store.leases.acquire("conn:1", 2, 30.0)
    assert grant.lease_id is not None
    clock.t = T0 + 30.0
    assert store.leases.in_use("conn:1") == 0  # looking drops the expired lease

    assert store.leases.release("conn:1", grant.lease_id) is False


def test_release_of_an_expired_lease_returns_false(store: MemoryStore, clock: Clock) -> None:
    grant = store.leases.acquire("conn:1", 2, 30.0)
    assert grant.lease_id is not None
    clock.t = T0 + 31.0  # the holder was too slow: its slot was already free

    assert store.leases.release("conn:1", grant.lease_id) is False


def test_no_state_is_left_after_a_thousand_acquire_release_cycles(store: MemoryStore) -> None:
    for n in range(1000):
        grant = store.leases.acquire(f"conn:{n % 7}", 2, 30.0)
        assert grant.lease_id is not None
        assert store.leases.release(f"conn:{n % 7}", grant.lease_id) is True

    assert store.leases._leases == {}


def test_expired_leases_of_a_key_are_dropped_when_the_key_is_next_seen(
    store: MemoryStore, clock: Clock
) -> None:
    for _ in range(5):
        store.leases.acquire("conn:1", 5, 1.0)
    clock.t = T0 + 1.0

    assert store.leases.in_use("conn:1") == 0
    assert store.leases._leases == {}


def test_expired_leases_of_keys_never_seen_again_do_not_accumulate(
    store: MemoryStore, clock: Clock
) -> None:
    for n in range(100):
        store.leases.acquire(f"dead:{n}", 1, 1.0)  # holders that crash, never release
    clock.t = T0 + 1.0

    for n in range(100):
        grant = store.leases.acquire(f"live:{n}", 1, 1.0)
        assert grant.lease_id is not None
        store.leases.release(f"live:{n}", grant.lease_id)

    assert store.leases._leases == {}


def test_threads_never_hold_more_leases_than_the_cap(store: MemoryStore) -> None:
    threads, rounds, cap = 8, 200, 3
    start = threading.Barrier(threads)
    most_seen = [0] * threads

    def worker(index: int) -> None:
        start.wait()
        for _ in range(rounds):
            grant = store.leases.acquire("conn:1", cap, 30.0)
            most_seen[index] = max(most_seen[index], grant.in_use)
            if grant.lease_id is not None:
                assert store.leases.release("conn:1", grant.lease_id) is True

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for each in workers:
        each.start()
    for each in workers:
        each.join()

    assert max(most_seen) <= cap
    assert store.leases.in_use("conn:1") == 0
    assert store.leases._leases == {}


@pytest.mark.parametrize("limit", [0, -1])
def test_cap_below_one_is_a_value_error_naming_the_limit(store: MemoryStore, limit: int) -> None:
    with pytest.raises(ValueError, match=f"concurrency limit must be at least 1, got {limit}"):
        store.leases.acquire("conn:1", limit, 30.0)


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_ttl_that_is_not_positive_is_a_value_error_naming_the_ttl(
    store: MemoryStore, ttl: float
) -> None:
    with pytest.raises(ValueError, match=f"lease ttl must be positive, got {ttl}"):
        store.leases.acquire("conn:1", 1, ttl)

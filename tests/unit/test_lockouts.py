"""Lockouts of the memory store: failures past a threshold block a key for a while.

Every test runs on a fake clock; time moves by assignment, never by sleeping.
"""

from __future__ import annotations

import threading

import pytest

from ratekeeper import Block, LockoutRule, MemoryStore
from support.clock import Clock

T0 = 1_728_000.0
NS = 1_000_000_000

# "3 failed logins within a minute block for 5 minutes"
RULE = LockoutRule(threshold=3, window=60.0, block=300.0)


def fail(store: MemoryStore, key: str, times: int, rule: LockoutRule = RULE) -> Block:
    block = Block(key, 0, 0, 0)
    for _ in range(times):
        block = store.lockouts.record_failure(key, rule)
    return block


def test_failures_below_the_threshold_do_not_block(store: MemoryStore) -> None:
    first = store.lockouts.record_failure("ip:1", RULE)
    second = store.lockouts.record_failure("ip:1", RULE)

    assert first == Block("ip:1", until_ns=0, failures=1, streak=0)
    assert second == Block("ip:1", until_ns=0, failures=2, streak=0)
    assert (second.blocked, second.until) == (False, 0.0)
    assert store.lockouts.status("ip:1") == Block("ip:1", until_ns=0, failures=2, streak=0)


def test_the_threshold_th_failure_within_the_window_blocks_for_block_seconds(
    store: MemoryStore, clock: Clock
) -> None:
    fail(store, "ip:1", 2)
    clock.t = T0 + 59.0

    block = store.lockouts.record_failure("ip:1", RULE)

    assert block == Block("ip:1", until_ns=(1_728_059 + 300) * NS, failures=3, streak=1)
    assert (block.blocked, block.until) == (True, T0 + 359.0)


def test_failures_outside_the_window_do_not_count(store: MemoryStore, clock: Clock) -> None:
    store.lockouts.record_failure("ip:1", RULE)
    clock.t = T0 + 30.0
    store.lockouts.record_failure("ip:1", RULE)

    clock.t = T0 + 60.0  # the failure of T0 is exactly one window old: it has left
    at_60 = store.lockouts.record_failure("ip:1", RULE)
    clock.t = T0 + 61.0
    at_61 = store.lockouts.record_failure("ip:1", RULE)

    assert (at_60.blocked, at_60.failures) == (False, 2)
    assert (at_61.blocked, at_61.until) == (True, T0 + 361.0)


def test_key_is_blocked_until_exactly_now_plus_block_and_unblocked_after(
    store: MemoryStore, clock: Clock
) -> None:
    fail(store, "ip:1", 3)

    clock.t = T0 + 299.999
    assert store.lockouts.status("ip:1") == Block("ip:1", (1_728_000 + 300) * NS, 0, 1)
    clock.t = T0 + 300.0
    status = store.lockouts.status("ip:1")
    assert (status.blocked, status.until_ns, status.streak) == (False, 0, 1)


def test_failures_during_a_block_neither_extend_it_nor_count_afterwards(
    store: MemoryStore, clock: Clock
) -> None:
    fail(store, "ip:1", 3)
    clock.t = T0 + 100.0

    during = fail(store, "ip:1", 10)

    assert (during.blocked, during.until) == (True, T0 + 300.0)
    clock.t = T0 + 300.0
    after = fail(store, "ip:1", 2)
    assert (after.blocked, after.failures) == (False, 2)
    assert fail(store, "ip:1", 1).until == T0 + 600.0


def test_without_escalation_every_block_lasts_the_same(store: MemoryStore, clock: Clock) -> None:
    first = fail(store, "ip:1", 3)
    clock.t = first.until
    second = fail(store, "ip:1", 3)

    assert (first.until, first.streak) == (T0 + 300.0, 1)
    assert (second.until, second.streak) == (T0 + 600.0, 2)


def test_escalation_doubles_each_next_block(store: MemoryStore, clock: Clock) -> None:
    rule = LockoutRule(threshold=3, window=60.0, block=300.0, escalation=2.0)

    blocks = []
    for _ in range(4):
        blocks.append(fail(store, "ip:1", 3, rule))
        clock.t = blocks[-1].until

    starts = [T0, *(b.until for b in blocks[:-1])]
    lengths = [b.until - start for b, start in zip(blocks, starts, strict=True)]
    assert lengths == [300.0, 600.0, 1200.0, 2400.0]
    assert [b.streak for b in blocks] == [1, 2, 3, 4]


def test_max_block_caps_an_escalating_block(store: MemoryStore, clock: Clock) -> None:
    rule = LockoutRule(threshold=3, window=60.0, block=300.0, escalation=2.0, max_block=1000.0)

    blocks = []
    for _ in range(4):
        blocks.append(fail(store, "ip:1", 3, rule))
        clock.t = blocks[-1].until

    assert [b.until for b in blocks] == [T0 + 300.0, T0 + 900.0, T0 + 1900.0, T0 + 2900.0]


def test_streak_is_forgotten_after_streak_memory_of_quiet(store: MemoryStore, clock: Clock) -> None:
    rule = LockoutRule(threshold=3, window=60.0, block=300.0, escalation=2.0, streak_memory=3600.0)
    fail(store, "ip:1", 3, rule)  # blocked until T0+300
    fail(store, "ip:2", 3, rule)

    clock.t = T0 + 300.0 + 3599.999
    remembered_at = store.now_ns()
    remembered = fail(store, "ip:1", 3, rule)
    clock.t = T0 + 300.0 + 3600.0
    forgotten = fail(store, "ip:2", 3, rule)

    assert (remembered.streak, remembered.until_ns) == (2, remembered_at + 600 * NS)
    assert (forgotten.streak, forgotten.until) == (1, T0 + 4200.0)


def test_unblock_lifts_a_live_block_and_forgets_the_failures(
    store: MemoryStore, clock: Clock
) -> None:
    fail(store, "ip:1", 3)
    clock.t = T0 + 10.0

    assert store.lockouts.unblock("ip:1") is True

    assert store.lockouts.status("ip:1") == Block("ip:1", 0, 0, 0)
    assert store.lockouts.blocks() == []
    assert fail(store, "ip:1", 2).blocked is False  # the threshold counts afresh
    assert fail(store, "ip:1", 1).until == T0 + 310.0


def test_unblock_of_a_key_that_is_not_blocked_returns_false(
    store: MemoryStore, clock: Clock
) -> None:
    fail(store, "ip:1", 2)
    fail(store, "ip:2", 3)
    clock.t = T0 + 300.0  # ip:2's block is over

    assert store.lockouts.unblock("ip:1") is False
    assert store.lockouts.unblock("ip:2") is False
    assert store.lockouts.unblock("ip:never-seen") is False
    assert fail(store, "ip:1", 2).blocked is False  # ip:1's two failures were forgotten


def test_blocks_lists_live_blocks_soonest_to_end_first(store: MemoryStore, clock: Clock) -> None:
    fail(store, "ip:early", 3)  # until T0+300
    clock.t = T0 + 100.0
    fail(store, "ip:late", 3)  # until T0+400
    fail(store, "ip:few", 2)  # not blocked
    clock.t = T0 + 200.0
    fail(store, "ip:middle", 3, LockoutRule(threshold=3, window=60.0, block=150.0))  # T0+350
    fail(store, "ip:gone", 3, LockoutRule(threshold=3, window=60.0, block=1.0))

    clock.t = T0 + 201.0
    assert [(b.key, b.until) for b in store.lockouts.blocks()] == [
        ("ip:early", T0 + 300.0),
        ("ip:middle", T0 + 350.0),
        ("ip:late", T0 + 400.0),
    ]
    clock.t = T0 + 300.0
    assert [b.key for b in store.lockouts.blocks()] == ["ip:middle", "ip:late"]


def test_keys_are_locked_out_independently(store: MemoryStore) -> None:
    fail(store, "ip:1", 3)

    assert store.lockouts.status("ip:1").blocked is True
    assert store.lockouts.status("ip:2") == Block("ip:2", 0, 0, 0)
    assert fail(store, "ip:2", 1).blocked is False


def test_threads_failing_one_key_block_it_exactly_once_at_the_threshold(
    store: MemoryStore,
) -> None:
    rule = LockoutRule(threshold=100, window=60.0, block=300.0)
    threads = 8
    start = threading.Barrier(threads)
    answers: list[list[Block]] = [[] for _ in range(threads)]

    def worker(index: int) -> None:
        start.wait()
        answers[index] = [store.lockouts.record_failure("ip:1", rule) for _ in range(50)]

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for each in workers:
        each.start()
    for each in workers:
        each.join()

    every = [block for answer in answers for block in answer]
    assert sum(not b.blocked for b in every) == 99
    assert sum(b.blocked and b.failures == 100 for b in every) == 1  # the one that blocked
    assert {b.until for b in every if b.blocked} == {T0 + 300.0}


def test_entries_whose_failures_and_streak_have_expired_do_not_accumulate(
    store: MemoryStore, clock: Clock
) -> None:
    rule = LockoutRule(threshold=3, window=60.0, block=300.0, streak_memory=600.0)
    for n in range(100):
        store.lockouts.record_failure(f"ip:old:{n}", rule)
    clock.t = T0 + 60.0  # every old failure has left its window; none ever blocked

    for n in range(100):
        store.lockouts.record_failure(f"ip:new:{n}", rule)

    assert set(store.lockouts._entries) == {f"ip:new:{n}" for n in range(100)}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"threshold": 0}, "lockout threshold must be at least 1, got 0"),
        ({"window": 0.0}, "lockout window and block must be positive durations"),
        ({"block": -1.0}, "lockout window and block must be positive durations"),
        ({"escalation": 0.5}, "lockout escalation must be at least 1, got 0.5"),
    ],
)
def test_invalid_rule_is_a_value_error_naming_the_bad_field(
    fields: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LockoutRule(**{"threshold": 3, "window": 60.0, "block": 300.0, **fields})  # type: ignore[arg-type]


def test_max_block_shorter_than_block_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="max_block"):
        LockoutRule(threshold=3, window=60.0, block=300.0, max_block=0.0)

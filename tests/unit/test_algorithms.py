"""Hand-computed examples for each algorithm, as pure functions of integer nanoseconds.

Each expected number below was worked out on paper from the algorithm's
definition (see docs/algorithms.md), not read back from the code. The last
tests drive the algorithms through ``RateLimiter`` and ``MemoryStore`` with a
fake clock to pin the all-or-nothing rule across rates.
"""

from __future__ import annotations

from typing import Any

import pytest

from ratekeeper import MemoryStore, RateLimiter
from ratekeeper.algorithms import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    FixedWindow,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
    get_algorithm,
)

S = 1_000_000_000  # one second in nanoseconds
MS = 1_000_000
EPOCH = 1_700_000_000 * S  # a realistic "now": 2023-11-14, a whole number of seconds


class Key:
    """One key's state under one algorithm and rate, driven by the pure functions."""

    def __init__(self, algorithm: Any, limit: int, window: int, capacity: int | None = None):
        self.algorithm = algorithm
        self.limit = limit
        self.window = window
        self.capacity = limit if capacity is None else capacity
        self.state: Any = None

    def hit(self, now: int, cost: int = 1) -> tuple[bool, int, int, int]:
        """``(allowed, room before, reset_at, retry_after)``, keeping the state if admitted."""
        allowed, room, reset, retry, next_state = self.algorithm.evaluate(
            self.state, now, cost, self.limit, self.window, self.capacity
        )
        if allowed:
            if self.algorithm.in_place:
                self.state = self.algorithm.consume(self.state, now, cost)
            else:
                self.state = next_state
        return allowed, room, reset, retry

    def fill(self, now: int, times: int) -> None:
        for _ in range(times):
            assert self.hit(now)[0]


# --- registry -------------------------------------------------------------------------


def test_algorithms_are_registered_under_their_names_with_sliding_window_default() -> None:
    assert sorted(ALGORITHMS) == ["fixed_window", "sliding_log", "sliding_window", "token_bucket"]
    assert DEFAULT_ALGORITHM == "sliding_window"
    assert all(get_algorithm(name).name == name for name in ALGORITHMS)


def test_get_algorithm_names_the_choices_for_an_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown algorithm 'leaky'.*fixed_window, sliding_log"):
        get_algorithm("leaky")


# --- fixed_window: 5 per second ---------------------------------------------------------


def test_fixed_window_counts_down_room_and_resets_at_the_next_boundary() -> None:
    key = Key(FixedWindow(), 5, S)
    t = EPOCH + 250 * MS
    assert [key.hit(t) for _ in range(5)] == [
        (True, 5, EPOCH + S, 0),
        (True, 4, EPOCH + S, 0),
        (True, 3, EPOCH + S, 0),
        (True, 2, EPOCH + S, 0),
        (True, 1, EPOCH + S, 0),
    ]
    assert key.state == (EPOCH + S, 5)  # (window end, count)


def test_fixed_window_denies_until_the_boundary_and_retry_after_reaches_it() -> None:
    key = Key(FixedWindow(), 5, S)
    key.fill(EPOCH + 250 * MS, 5)
    assert key.hit(EPOCH + 600 * MS) == (False, 0, EPOCH + S, 400 * MS)
    assert key.hit(EPOCH + S - 1) == (False, 0, EPOCH + S, 1)
    assert key.hit(EPOCH + S) == (True, 5, EPOCH + 2 * S, 0)


def test_fixed_window_charges_cost_as_that_many_units() -> None:
    key = Key(FixedWindow(), 5, S)
    assert key.hit(EPOCH, cost=3) == (True, 5, EPOCH + S, 0)
    assert key.hit(EPOCH + 100 * MS, cost=3) == (False, 2, EPOCH + S, 900 * MS)
    assert key.hit(EPOCH + 100 * MS, cost=2) == (True, 2, EPOCH + S, 0)
    assert key.state == (EPOCH + S, 5)  # (window end, count)


def test_fixed_window_tells_a_cost_above_the_limit_to_wait_one_window() -> None:
    key = Key(FixedWindow(), 5, S)
    assert key.hit(EPOCH + 100 * MS, cost=6) == (False, 5, EPOCH + 1100 * MS, S)
    assert key.state is None


def test_fixed_window_zero_cost_reports_reset_without_charging() -> None:
    key = Key(FixedWindow(), 5, S)
    assert key.hit(EPOCH + 100 * MS, cost=0) == (True, 5, EPOCH + 100 * MS, 0)
    key.fill(EPOCH + 100 * MS, 1)
    assert key.hit(EPOCH + 300 * MS, cost=0) == (True, 4, EPOCH + S, 0)


def test_fixed_window_state_expires_at_the_end_of_its_window() -> None:
    assert FixedWindow().expires_at((8 * S, 3), 5, S) == 8 * S


def live(log: list[int]) -> list[int]:
    """The live timestamps of a sliding log state ``[head, t1, t2, ...]``."""
    return log[log[0] :]


# --- sliding_log: 3 per 10 seconds --------------------------------------------------------


def test_sliding_log_resets_one_window_after_each_admission() -> None:
    key = Key(SlidingLog(), 3, 10 * S)
    assert key.hit(EPOCH) == (True, 3, EPOCH + 10 * S, 0)
    assert key.hit(EPOCH + 2 * S) == (True, 2, EPOCH + 12 * S, 0)
    assert key.hit(EPOCH + 4 * S) == (True, 1, EPOCH + 14 * S, 0)
    assert live(key.state) == [EPOCH, EPOCH + 2 * S, EPOCH + 4 * S]


def test_sliding_log_retry_after_waits_for_the_oldest_units_that_must_leave() -> None:
    key = Key(SlidingLog(), 3, 10 * S)
    for second in (0, 2, 4):
        key.hit(EPOCH + second * S)
    # one unit: the one admitted at 0 leaves at 10
    assert key.hit(EPOCH + 5 * S) == (False, 0, EPOCH + 10 * S, 5 * S)
    # two units: the one admitted at 2 must leave too, at 12
    assert key.hit(EPOCH + 5 * S, cost=2) == (False, 0, EPOCH + 12 * S, 7 * S)
    assert key.hit(EPOCH + 5 * S, cost=3) == (False, 0, EPOCH + 14 * S, 9 * S)


def test_sliding_log_frees_a_unit_exactly_one_window_after_it_was_admitted() -> None:
    key = Key(SlidingLog(), 3, 10 * S)
    for second in (0, 2, 4):
        key.hit(EPOCH + second * S)
    assert key.hit(EPOCH + 10 * S - 1) == (False, 0, EPOCH + 10 * S, 1)
    assert key.hit(EPOCH + 10 * S) == (True, 1, EPOCH + 20 * S, 0)
    assert live(key.state) == [EPOCH + 2 * S, EPOCH + 4 * S, EPOCH + 10 * S]


def test_sliding_log_charges_cost_as_that_many_timestamps() -> None:
    key = Key(SlidingLog(), 3, 10 * S)
    assert key.hit(EPOCH, cost=2) == (True, 3, EPOCH + 10 * S, 0)
    assert live(key.state) == [EPOCH, EPOCH]
    assert key.hit(EPOCH + S, cost=2) == (False, 1, EPOCH + 10 * S, 9 * S)
    assert key.hit(EPOCH + S, cost=1) == (True, 1, EPOCH + 11 * S, 0)


def test_sliding_log_tells_a_cost_above_the_limit_to_wait_one_window() -> None:
    key = Key(SlidingLog(), 3, 10 * S)
    assert key.hit(EPOCH, cost=4) == (False, 3, EPOCH + 10 * S, 10 * S)
    assert key.state is None


def test_sliding_log_zero_cost_resets_when_the_newest_unit_leaves() -> None:
    key = Key(SlidingLog(), 3, 10 * S)
    assert key.hit(EPOCH, cost=0) == (True, 3, EPOCH, 0)
    key.fill(EPOCH + S, 1)
    key.fill(EPOCH + 3 * S, 1)
    assert key.hit(EPOCH + 4 * S, cost=0) == (True, 1, EPOCH + 13 * S, 0)


def test_sliding_log_state_expires_when_its_newest_unit_leaves() -> None:
    assert SlidingLog().expires_at([1, 5, 9], 3, 10) == 19
    assert SlidingLog().expires_at([3, 5, 9], 3, 10) == 0  # both entries already skipped
    assert SlidingLog().expires_at([1], 3, 10) == 0


# --- sliding_window: 10 per 10 seconds ----------------------------------------------------


def test_sliding_window_counts_the_current_window_and_resets_two_boundaries_ahead() -> None:
    key = Key(SlidingWindow(), 10, 10 * S)
    t = EPOCH + 2 * S  # EPOCH is a multiple of 10 s: window index EPOCH // 10 s
    assert key.hit(t) == (True, 10, EPOCH + 20 * S, 0)
    assert key.hit(t, cost=5) == (True, 9, EPOCH + 20 * S, 0)
    assert key.state == (EPOCH + 10 * S, 0, 6)  # (window end, previous, current)


def test_sliding_window_weights_the_previous_window_by_the_time_left() -> None:
    key = Key(SlidingWindow(), 10, 10 * S)
    key.fill(EPOCH + 2 * S, 6)
    # at 12 s: 8 s of 10 left, estimate 6 * 0.8 = 4.8, room floor(10 - 4.8) = 5
    t = EPOCH + 12 * S
    assert [key.hit(t)[:2] for _ in range(6)] == [
        (True, 5), (True, 4), (True, 3), (True, 2), (True, 1), (False, 0)
    ]  # fmt: skip
    assert key.state == (EPOCH + 20 * S, 6, 5)


def test_sliding_window_retry_after_is_when_the_previous_weight_has_fallen_enough() -> None:
    key = Key(SlidingWindow(), 10, 10 * S)
    key.fill(EPOCH + 2 * S, 6)
    key.fill(EPOCH + 12 * S, 5)
    # need 6 * left / 10 s + 5 + 1 <= 10: left <= 6.666666666 s, i.e. at 13.333333334 s
    retry = 1_333_333_334
    assert key.hit(EPOCH + 12 * S) == (False, 0, EPOCH + 12 * S + retry, retry)
    assert key.hit(EPOCH + 12 * S + retry - 1)[0] is False
    assert key.hit(EPOCH + 12 * S + retry) == (True, 1, EPOCH + 30 * S, 0)


def test_sliding_window_retry_after_reaches_into_the_next_window_when_current_is_full() -> None:
    key = Key(SlidingWindow(), 10, 10 * S)
    key.fill(EPOCH + 15 * S, 10)
    # next window starts at 20 s with previous = 10: 10 * left / 10 s + 1 <= 10 at left = 9 s
    assert key.hit(EPOCH + 19 * S) == (False, 0, EPOCH + 21 * S, 2 * S)
    assert key.hit(EPOCH + 21 * S - 1)[0] is False
    assert key.hit(EPOCH + 21 * S) == (True, 1, EPOCH + 40 * S, 0)
    # now current = 1: a cost of 4 must wait until 10 * left / 10 s + 1 + 4 <= 10, left <= 5 s
    assert key.hit(EPOCH + 21 * S, cost=4) == (False, 0, EPOCH + 25 * S, 4 * S)


def test_sliding_window_forgets_a_window_older_than_the_previous_one() -> None:
    def full_at_5_s() -> Key:
        key = Key(SlidingWindow(), 10, 10 * S)
        key.fill(EPOCH + 5 * S, 10)
        return key

    # next window, [10 s, 20 s): previous = 10 weighs 10 * left / 10 s
    assert full_at_5_s().hit(EPOCH + 10 * S) == (False, 0, EPOCH + 11 * S, S)
    assert full_at_5_s().hit(EPOCH + 15 * S) == (True, 5, EPOCH + 30 * S, 0)
    assert full_at_5_s().hit(EPOCH + 20 * S - 1) == (True, 9, EPOCH + 30 * S, 0)
    # two windows on, [20 s, 30 s): the window at 5 s is forgotten
    assert full_at_5_s().hit(EPOCH + 20 * S) == (True, 10, EPOCH + 40 * S, 0)


def test_sliding_window_tells_a_cost_above_the_limit_to_wait_one_window() -> None:
    key = Key(SlidingWindow(), 10, 10 * S)
    assert key.hit(EPOCH + S, cost=11) == (False, 10, EPOCH + 11 * S, 10 * S)


def test_sliding_window_zero_cost_resets_when_the_weighted_previous_is_gone() -> None:
    key = Key(SlidingWindow(), 10, 10 * S)
    assert key.hit(EPOCH + S, cost=0) == (True, 10, EPOCH + S, 0)
    key.fill(EPOCH + S, 4)
    # at 15 s: previous 4 weighs 2, current 0 -> back to full at the boundary (20 s)
    assert key.hit(EPOCH + 15 * S, cost=0) == (True, 8, EPOCH + 20 * S, 0)


def test_sliding_window_state_expires_one_window_after_its_window_ends() -> None:
    assert SlidingWindow().expires_at((8 * S, 1, 2), 5, S) == 9 * S


def test_sliding_window_admits_2n_minus_1_in_one_window_span_after_a_boundary_burst() -> None:
    """The documented worst case, hand-computed for 5 per second.

    5 just before a boundary, then 4 more as the previous window's weight falls:
    at 0.2 s, 0.4 s, 0.6 s and 0.8 s into the new window. 9 = 2 * 5 - 1 admitted
    within [0.9 s, 1.9 s), a span shorter than one window.
    """
    key = Key(SlidingWindow(), 5, S)
    key.fill(EPOCH + 900 * MS, 5)
    admitted = [EPOCH + 900 * MS] * 5
    for ms in range(1000, 2000, 10):
        if key.hit(EPOCH + ms * MS)[0]:
            admitted.append(EPOCH + ms * MS)
    assert admitted[5:] == [EPOCH + ms * MS for ms in (1200, 1400, 1600, 1800)]
    assert sum(EPOCH + 900 * MS <= t < EPOCH + 1900 * MS for t in admitted) == 9


# --- token_bucket (GCRA): 5 per second ------------------------------------------------------


def test_token_bucket_admits_capacity_at_once_each_reset_one_interval_later() -> None:
    key = Key(TokenBucket(), 5, S)
    t = EPOCH + 123_456_789
    assert [key.hit(t) for _ in range(5)] == [
        (True, 5, t + 200 * MS, 0),
        (True, 4, t + 400 * MS, 0),
        (True, 3, t + 600 * MS, 0),
        (True, 2, t + 800 * MS, 0),
        (True, 1, t + S, 0),
    ]
    assert key.state == (t + S) * 5  # the TAT, scaled by the limit


def test_token_bucket_refills_one_unit_per_interval() -> None:
    key = Key(TokenBucket(), 5, S)
    key.fill(EPOCH, 5)
    assert key.hit(EPOCH) == (False, 0, EPOCH + 200 * MS, 200 * MS)
    assert key.hit(EPOCH + 200 * MS - 1) == (False, 0, EPOCH + 200 * MS, 1)
    assert key.hit(EPOCH + 200 * MS) == (True, 1, EPOCH + S + 200 * MS, 0)
    assert key.hit(EPOCH + 500 * MS) == (True, 1, EPOCH + S + 400 * MS, 0)  # 1.5 tokens: room 1
    assert key.hit(EPOCH + 500 * MS) == (False, 0, EPOCH + 600 * MS, 100 * MS)


def test_token_bucket_charges_cost_as_that_many_intervals() -> None:
    key = Key(TokenBucket(), 5, S)
    assert key.hit(EPOCH, cost=2) == (True, 5, EPOCH + 400 * MS, 0)
    assert key.hit(EPOCH, cost=4) == (False, 3, EPOCH + 200 * MS, 200 * MS)
    assert key.hit(EPOCH, cost=3) == (True, 3, EPOCH + S, 0)


def test_token_bucket_tells_a_cost_above_the_capacity_to_wait_one_window() -> None:
    key = Key(TokenBucket(), 5, S)
    assert key.hit(EPOCH, cost=6) == (False, 5, EPOCH + S, S)
    assert key.state is None


def test_token_bucket_burst_sets_the_capacity_and_the_refill_stays_limit_per_window() -> None:
    key = Key(TokenBucket(), 5, S, capacity=10)
    assert key.hit(EPOCH, cost=7) == (True, 10, EPOCH + 1400 * MS, 0)  # above limit, within burst
    key.fill(EPOCH, 3)
    assert key.hit(EPOCH) == (False, 0, EPOCH + 200 * MS, 200 * MS)
    assert key.hit(EPOCH, cost=3) == (False, 0, EPOCH + 600 * MS, 600 * MS)
    assert key.hit(EPOCH, cost=11) == (False, 0, EPOCH + S, S)
    # the bucket is full again 10 intervals (2 s) after the burst
    assert key.hit(EPOCH + 2 * S, cost=0) == (True, 10, EPOCH + 2 * S, 0)


def test_token_bucket_capacity_below_the_limit_admits_fewer_at_once() -> None:
    key = Key(TokenBucket(), 5, S, capacity=2)
    key.fill(EPOCH, 2)
    assert key.hit(EPOCH) == (False, 0, EPOCH + 200 * MS, 200 * MS)
    assert key.hit(EPOCH, cost=3) == (False, 0, EPOCH + S, S)


def test_token_bucket_rounds_a_fractional_interval_up_to_the_next_nanosecond() -> None:
    # 3 per second: one unit each 333,333,333.3 ns
    key = Key(TokenBucket(), 3, S)
    key.fill(EPOCH, 3)
    assert key.hit(EPOCH) == (False, 0, EPOCH + 333_333_334, 333_333_334)
    assert key.hit(EPOCH + 333_333_333)[0] is False
    assert key.hit(EPOCH + 333_333_334) == (True, 1, EPOCH + S + 333_333_334, 0)
    # three refills take exactly one second: no drift accumulates
    assert key.hit(EPOCH + S, cost=2) == (True, 2, EPOCH + 2 * S, 0)


def test_token_bucket_zero_cost_resets_when_the_bucket_is_full_again() -> None:
    key = Key(TokenBucket(), 5, S)
    assert key.hit(EPOCH, cost=0) == (True, 5, EPOCH, 0)
    key.fill(EPOCH, 3)
    assert key.hit(EPOCH + 100 * MS, cost=0) == (True, 2, EPOCH + 600 * MS, 0)


def test_token_bucket_state_expires_when_the_bucket_is_full() -> None:
    assert TokenBucket().expires_at(3 * 10 + 1, 3, 10) == 11  # ceil(31 / 3)


# --- through RateLimiter with a fake clock ------------------------------------------------


@pytest.mark.parametrize("base", [0.0, 1_700_000_000.0], ids=["epoch0", "epoch1.7e9"])
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_rate_limiter_charges_all_rates_or_none(algorithm: str, base: float) -> None:
    """8 hits at t=0 pass 5 (the second rate denies 3, which must not count against
    the minute); 8 more at t=2.5 pass 5 again (the minute rate is then full)."""
    t = [base]
    limiter = RateLimiter(MemoryStore(clock=lambda: t[0]), algorithm=algorithm)
    first = [limiter.hit("k", "5/second;10/minute") for _ in range(8)]
    t[0] = base + 2.5
    second = [limiter.hit("k", "5/second;10/minute") for _ in range(8)]
    assert [d.allowed for d in first] == [True] * 5 + [False] * 3
    assert [d.allowed for d in second] == [True] * 5 + [False] * 3
    assert [(d.limit, d.remaining) for d in first[5:]] == [(5, 0)] * 3
    assert [(d.limit, d.remaining) for d in second[5:]] == [(10, 0)] * 3


@pytest.mark.parametrize(
    ("algorithm", "second_wait", "minute_wait"),
    [
        ("fixed_window", 1.0, 57.5),  # the boundaries at 1 s and 60 s
        ("sliding_log", 1.0, 57.5),  # the units admitted at 0 leave at 1 s and 60 s
        ("sliding_window", 1.2, 63.5),  # 5 * (1 - 0.2) + 1 <= 5; 10 * (1 - 0.1) + 1 <= 10
        ("token_bucket", 0.2, 3.5),  # one interval; TAT 60 s + 6 s - capacity 60 s - 2.5 s
    ],
)
def test_rate_limiter_denial_reports_the_blocking_rate_and_exact_retry_after(
    algorithm: str, second_wait: float, minute_wait: float
) -> None:
    t = [0.0]
    limiter = RateLimiter(MemoryStore(clock=lambda: t[0]), algorithm=algorithm)
    for _ in range(5):
        limiter.hit("k", "5/second;10/minute")
    denied = limiter.hit("k", "5/second;10/minute")
    assert (denied.allowed, denied.limit, denied.retry_after) == (False, 5, second_wait)
    assert denied.reset_at == second_wait
    t[0] = 2.5
    for _ in range(5):
        limiter.hit("k", "5/second;10/minute")
    denied = limiter.hit("k", "5/second;10/minute")
    assert (denied.allowed, denied.limit, denied.retry_after) == (False, 10, minute_wait)
    assert denied.reset_at == 2.5 + minute_wait


@pytest.mark.parametrize("offset", [0.0, 0.1, 0.3, 0.7123456, 0.999999])
def test_token_bucket_at_a_realistic_epoch_admits_exactly_the_limit_at_once(offset: float) -> None:
    t = [1_700_000_000.0 + offset]
    limiter = RateLimiter(MemoryStore(clock=lambda: t[0]), algorithm="token_bucket")
    decisions = [limiter.hit("k", "5/second") for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert decisions[5].retry_after == pytest.approx(0.2, abs=1e-9)


def test_sliding_log_compacts_expired_entries_and_keeps_exact_answers() -> None:
    key = Key(SlidingLog(), 100, 10 * S)
    for step in range(100):  # 100 units, one every 10 ms
        assert key.hit(EPOCH + step * 10 * MS)[0]
    # 0.5 s after the window: the first 50 units (0..490 ms) have left
    t = EPOCH + 10 * S + 495 * MS
    allowed, room, _, _ = key.hit(t)
    assert (allowed, room) == (True, 50)
    assert key.state[0] == 1  # compacted: the 50 expired entries are gone
    assert len(key.state) == 1 + 51
    assert live(key.state)[0] == EPOCH + 500 * MS
    for _ in range(49):
        assert key.hit(t)[0]
    allowed, room, reset, retry = key.hit(t)  # full: the unit admitted at 500 ms leaves first
    assert (allowed, room) == (False, 0)
    assert retry == EPOCH + 500 * MS + 10 * S - t
    assert reset == t + retry

"""The primitive face: RateLimiter / AsyncRateLimiter over a MemoryStore.

Every test runs on a fake clock; time moves by assignment, never by sleeping.
T0 is a day boundary, so every fixed window (second, minute, hour) starts there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from ratekeeper import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    AsyncRateLimiter,
    Decision,
    MemoryStore,
    Rate,
    RateLimiter,
)
from ratekeeper.stores import LimitSpec
from support.clock import Clock

T0 = 1_728_000.0  # 20 days after the epoch: aligned to every window used here
SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS

ALGORITHM_NAMES = sorted(ALGORITHMS)

# "5/second" hit five times at T0: reset_at after each allowed hit (seconds after T0)
RESETS_WHILE_COUNTING_DOWN = {
    "sliding_window": [2.0, 2.0, 2.0, 2.0, 2.0],  # the current window stops weighing at T0+2
    "sliding_log": [1.0, 1.0, 1.0, 1.0, 1.0],  # the newest unit leaves at T0+1
    "token_bucket": [0.2, 0.4, 0.6, 0.8, 1.0],  # one unit refills every 200 ms
    "fixed_window": [1.0, 1.0, 1.0, 1.0, 1.0],  # the aligned window ends at T0+1
}
# the sixth hit of "5/second" at T0: how long until it could pass
RETRY_AFTER_SIXTH = {
    "sliding_window": 1.2,  # at T0+1.2 the previous window weighs 5 * 0.8 = 4
    "sliding_log": 1.0,
    "token_bucket": 0.2,
    "fixed_window": 1.0,
}


@pytest.fixture
def rl(store: MemoryStore) -> RateLimiter:
    return RateLimiter(store)


def fields(decision: Decision) -> tuple[bool, int, int, float, float]:
    return (
        decision.allowed,
        decision.limit,
        decision.remaining,
        decision.reset_at,
        decision.retry_after,
    )


def status_fields(decision: Decision) -> list[tuple[int, int, float, float, bool, float]]:
    return [
        (s.limit, s.remaining, s.reset_at, s.window, s.allowed, s.retry_after)
        for s in decision.statuses
    ]


# --- one rate, every algorithm -------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_allowed_hit_reports_every_decision_field(rl: RateLimiter, algorithm: str) -> None:
    decision = rl.hit("user:1", "5/second", algorithm=algorithm)

    first_reset = T0 + RESETS_WHILE_COUNTING_DOWN[algorithm][0]
    assert fields(decision) == (True, 5, 4, first_reset, 0.0)
    assert bool(decision) is True
    assert status_fields(decision) == [(5, 4, first_reset, 1.0, True, 0.0)]
    (status,) = decision.statuses
    assert (status.key, status.name, status.shadow) == ("user:1", "", False)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_remaining_counts_down_to_zero_then_the_hit_is_denied(
    rl: RateLimiter, algorithm: str
) -> None:
    decisions = [rl.hit("user:1", "5/second", algorithm=algorithm) for _ in range(6)]

    expected = [
        (True, 5, remaining, T0 + reset, 0.0)
        for remaining, reset in zip(
            [4, 3, 2, 1, 0], RESETS_WHILE_COUNTING_DOWN[algorithm], strict=True
        )
    ]
    retry = RETRY_AFTER_SIXTH[algorithm]
    expected.append((False, 5, 0, T0 + retry, retry))
    assert [fields(d) for d in decisions] == expected


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_denied_hit_reports_every_decision_field(rl: RateLimiter, algorithm: str) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm=algorithm)

    decision = rl.hit("user:1", "5/second", algorithm=algorithm)

    retry = RETRY_AFTER_SIXTH[algorithm]
    assert fields(decision) == (False, 5, 0, T0 + retry, retry)
    assert bool(decision) is False
    assert status_fields(decision) == [(5, 0, T0 + retry, 1.0, False, retry)]


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_denied_request_passes_exactly_when_retry_after_has_elapsed(
    rl: RateLimiter, clock: Clock, algorithm: str
) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm=algorithm)
    retry = rl.hit("user:1", "5/second", algorithm=algorithm).retry_after

    clock.t = T0 + retry - 0.001
    assert rl.hit("user:1", "5/second", algorithm=algorithm).allowed is False
    clock.t = T0 + retry
    assert rl.hit("user:1", "5/second", algorithm=algorithm).allowed is True


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_denied_hits_consume_nothing(rl: RateLimiter, clock: Clock, algorithm: str) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm=algorithm)
    denied = [rl.hit("user:1", "5/second", algorithm=algorithm) for _ in range(20)]

    assert {fields(d) for d in denied} == {
        (False, 5, 0, T0 + RETRY_AFTER_SIXTH[algorithm], RETRY_AFTER_SIXTH[algorithm])
    }
    clock.t = T0 + RETRY_AFTER_SIXTH[algorithm]
    assert rl.hit("user:1", "5/second", algorithm=algorithm).allowed is True


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_peek_consumes_nothing_and_reports_the_quota_left_now(
    rl: RateLimiter, algorithm: str
) -> None:
    fresh = rl.peek("user:1", "5/second", algorithm=algorithm)
    assert fields(fresh) == (True, 5, 5, T0, 0.0)  # nothing used: fully reset already

    rl.hit("user:1", "5/second", algorithm=algorithm)
    rl.hit("user:1", "5/second", algorithm=algorithm)
    peeks = [rl.peek("user:1", "5/second", algorithm=algorithm) for _ in range(10)]

    reset_after_two = T0 + RESETS_WHILE_COUNTING_DOWN[algorithm][1]
    assert {fields(d) for d in peeks} == {(True, 5, 3, reset_after_two, 0.0)}
    assert status_fields(peeks[0]) == [(5, 3, reset_after_two, 1.0, True, 0.0)]
    assert rl.hit("user:1", "5/second", algorithm=algorithm).remaining == 2


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_peek_on_an_exhausted_key_is_denied_with_the_same_retry_after_as_a_hit(
    rl: RateLimiter, algorithm: str
) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm=algorithm)

    peek = rl.peek("user:1", "5/second", algorithm=algorithm)

    retry = RETRY_AFTER_SIXTH[algorithm]
    assert fields(peek) == (False, 5, 0, T0 + retry, retry)
    assert fields(rl.hit("user:1", "5/second", algorithm=algorithm)) == fields(peek)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_peek_with_cost_says_whether_that_cost_would_pass(rl: RateLimiter, algorithm: str) -> None:
    rl.hit("user:1", "5/second", cost=3, algorithm=algorithm)

    too_much = rl.peek("user:1", "5/second", cost=3, algorithm=algorithm)
    fits = rl.peek("user:1", "5/second", cost=2, algorithm=algorithm)

    assert (too_much.allowed, too_much.remaining) == (False, 2)
    assert (fits.allowed, fits.remaining, fits.retry_after) == (True, 2, 0.0)
    assert fields(rl.hit("user:1", "5/second", cost=2, algorithm=algorithm))[:3] == (True, 5, 0)


# cost 3 after cost 3 on "5/second" at T0: how long until the second could pass
RETRY_AFTER_COST_3_OF_2_LEFT = {
    "sliding_window": 1.333333334,  # next window, once 3 * (1 - s) <= 2: s = 1/3 (ns ceiling)
    "sliding_log": 1.0,
    "token_bucket": 0.2,  # one more unit refills in 200 ms
    "fixed_window": 1.0,
}


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_cost_above_one_consumes_that_many_units(rl: RateLimiter, algorithm: str) -> None:
    first = rl.hit("user:1", "5/second", cost=3, algorithm=algorithm)
    second = rl.hit("user:1", "5/second", cost=3, algorithm=algorithm)
    third = rl.hit("user:1", "5/second", cost=2, algorithm=algorithm)

    assert (first.allowed, first.remaining) == (True, 2)
    retry = RETRY_AFTER_COST_3_OF_2_LEFT[algorithm]
    assert fields(second) == (False, 5, 2, T0 + retry, retry)
    assert (third.allowed, third.remaining) == (True, 0)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_cost_above_the_limit_is_denied_told_to_wait_one_window_and_consumes_nothing(
    rl: RateLimiter, algorithm: str
) -> None:
    decision = rl.hit("user:1", "5/second", cost=6, algorithm=algorithm)

    assert fields(decision) == (False, 5, 5, T0 + 1.0, 1.0)
    assert rl.peek("user:1", "5/second", algorithm=algorithm).remaining == 5


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_keys_have_independent_quotas(rl: RateLimiter, algorithm: str) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm=algorithm)

    assert rl.hit("user:1", "5/second", algorithm=algorithm).allowed is False
    assert fields(rl.hit("user:2", "5/second", algorithm=algorithm))[:3] == (True, 5, 4)


def test_each_algorithm_keeps_its_own_counter_for_one_key(rl: RateLimiter) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm="fixed_window")

    assert rl.hit("user:1", "5/second", algorithm="fixed_window").allowed is False
    assert rl.hit("user:1", "5/second", algorithm="sliding_log").remaining == 4


# --- what distinguishes each algorithm ---------------------------------------------------


def test_sliding_window_weighs_the_previous_window_by_the_time_left_in_the_current(
    rl: RateLimiter, clock: Clock
) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm="sliding_window")
    clock.t = T0 + 1.5  # previous window (5 hits) weighs 0.5: estimate 2.5, room 2

    assert rl.peek("user:1", "5/second", algorithm="sliding_window").remaining == 2
    decisions = [rl.hit("user:1", "5/second", algorithm="sliding_window") for _ in range(3)]

    assert [fields(d) for d in decisions] == [
        (True, 5, 1, T0 + 3.0, 0.0),
        (True, 5, 0, T0 + 3.0, 0.0),
        # 2 + 5 * left <= 4 once left <= 0.4: 100 ms from now
        (False, 5, 0, T0 + 1.6, 0.1),
    ]


def test_fixed_window_gives_the_whole_quota_back_at_the_aligned_boundary(
    rl: RateLimiter, clock: Clock
) -> None:
    clock.t = T0 + 0.5
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm="fixed_window")
    clock.t = T0 + 0.999

    assert fields(rl.hit("user:1", "5/second", algorithm="fixed_window")) == (
        False, 5, 0, T0 + 1.0, 0.001,
    )  # fmt: skip
    clock.t = T0 + 1.0
    assert fields(rl.hit("user:1", "5/second", algorithm="fixed_window")) == (
        True, 5, 4, T0 + 2.0, 0.0,
    )  # fmt: skip


def test_sliding_log_admits_a_unit_again_exactly_one_window_after_it_was_admitted(
    rl: RateLimiter, clock: Clock
) -> None:
    for _ in range(3):
        rl.hit("user:1", "5/second", algorithm="sliding_log")
    clock.t = T0 + 0.5
    for _ in range(2):
        rl.hit("user:1", "5/second", algorithm="sliding_log")

    clock.t = T0 + 0.999
    assert rl.peek("user:1", "5/second", algorithm="sliding_log").remaining == 0
    clock.t = T0 + 1.0  # the three units of T0 leave; the two of T0+0.5 stay
    assert rl.peek("user:1", "5/second", algorithm="sliding_log").remaining == 3
    decisions = [rl.hit("user:1", "5/second", algorithm="sliding_log") for _ in range(4)]

    assert [fields(d) for d in decisions] == [
        (True, 5, 2, T0 + 2.0, 0.0),
        (True, 5, 1, T0 + 2.0, 0.0),
        (True, 5, 0, T0 + 2.0, 0.0),
        (False, 5, 0, T0 + 1.5, 0.5),  # the oldest unit (T0+0.5) leaves at T0+1.5
    ]


def test_token_bucket_refills_one_unit_per_interval(rl: RateLimiter, clock: Clock) -> None:
    for _ in range(5):
        rl.hit("user:1", "5/second", algorithm="token_bucket")
    clock.t = T0 + 0.2

    assert fields(rl.hit("user:1", "5/second", algorithm="token_bucket")) == (
        True, 5, 0, T0 + 1.2, 0.0,
    )  # fmt: skip
    clock.t = T0 + 0.3
    assert fields(rl.hit("user:1", "5/second", algorithm="token_bucket")) == (
        False, 5, 0, T0 + 0.4, 0.1,
    )  # fmt: skip


def test_token_bucket_burst_lets_that_many_pass_at_once(rl: RateLimiter) -> None:
    rate = Rate(5, SECOND_NS, burst=10)

    decisions = [rl.hit("user:1", rate, algorithm="token_bucket") for _ in range(11)]

    assert [d.remaining for d in decisions[:10]] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert fields(decisions[9]) == (True, 5, 0, T0 + 2.0, 0.0)  # 10 units refill in 2 s
    assert fields(decisions[10]) == (False, 5, 0, T0 + 0.2, 0.2)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_exactly_limit_hits_pass_at_a_real_epoch_timestamp(algorithm: str) -> None:
    clock = Clock(1_700_000_000.0)  # float seconds at today's epoch: ~0.2 us resolution
    rl = RateLimiter(MemoryStore(clock=clock), algorithm=algorithm)

    assert sum(rl.hit("user:1", "5/second").allowed for _ in range(10)) == 5


# --- several rates ----------------------------------------------------------------------


def test_statuses_report_each_rate_shortest_window_first(rl: RateLimiter) -> None:
    decision = rl.hit("user:1", "10/minute;5/second", algorithm="fixed_window")

    assert fields(decision) == (True, 5, 4, T0 + 1.0, 0.0)
    assert status_fields(decision) == [
        (5, 4, T0 + 1.0, 1.0, True, 0.0),
        (10, 9, T0 + 60.0, 60.0, True, 0.0),
    ]
    assert [s.key for s in decision.statuses] == ["user:1", "user:1"]


def test_tightest_rate_is_the_one_with_least_remaining_and_the_later_reset_on_a_tie(
    rl: RateLimiter, clock: Clock
) -> None:
    rates = "5/second;10/minute"
    at_t0 = [rl.hit("user:1", rates, algorithm="fixed_window") for _ in range(5)]
    clock.t = T0 + 1.0
    at_t1 = rl.hit("user:1", rates, algorithm="fixed_window")

    assert [fields(d) for d in at_t0] == [
        (True, 5, remaining, T0 + 1.0, 0.0) for remaining in (4, 3, 2, 1, 0)
    ]
    # the second has 4 left and so has the minute: the minute, which resets later, is named
    assert status_fields(at_t1) == [
        (5, 4, T0 + 2.0, 1.0, True, 0.0),
        (10, 4, T0 + 60.0, 60.0, True, 0.0),
    ]
    assert fields(at_t1) == (True, 10, 4, T0 + 60.0, 0.0)


def test_denied_decision_names_the_denying_rate_that_needs_the_longest_wait(
    rl: RateLimiter, clock: Clock
) -> None:
    rates = "5/second;10/minute"
    for second in (0.0, 1.0):
        clock.t = T0 + second
        for _ in range(5):
            rl.hit("user:1", rates, algorithm="fixed_window")

    both_full = rl.hit("user:1", rates, algorithm="fixed_window")
    clock.t = T0 + 2.0
    minute_full = rl.hit("user:1", rates, algorithm="fixed_window")

    assert fields(both_full) == (False, 10, 0, T0 + 60.0, 59.0)
    assert status_fields(both_full) == [
        (5, 0, T0 + 2.0, 1.0, False, 1.0),
        (10, 0, T0 + 60.0, 60.0, False, 59.0),
    ]
    assert fields(minute_full) == (False, 10, 0, T0 + 60.0, 58.0)
    assert status_fields(minute_full) == [
        (5, 5, T0 + 2.0, 1.0, True, 0.0),
        (10, 0, T0 + 60.0, 60.0, False, 58.0),
    ]


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_hit_denied_by_the_short_rate_consumes_nothing_from_the_long_rate(
    rl: RateLimiter, algorithm: str
) -> None:
    rates = "5/second;10/minute"
    for _ in range(5):
        rl.hit("user:1", rates, algorithm=algorithm)

    denied = [rl.hit("user:1", rates, algorithm=algorithm) for _ in range(3)]

    assert [d.allowed for d in denied] == [False, False, False]
    assert [(s.allowed, s.remaining) for s in denied[-1].statuses] == [(False, 0), (True, 5)]
    assert [s.remaining for s in rl.peek("user:1", rates, algorithm=algorithm).statuses] == [
        0,
        5,
    ]


def test_hit_denied_by_the_long_rate_consumes_nothing_from_the_short_rate(
    rl: RateLimiter, clock: Clock
) -> None:
    rates = "2/second;3/minute"
    rl.hit("user:1", rates, algorithm="fixed_window")
    rl.hit("user:1", rates, algorithm="fixed_window")
    clock.t = T0 + 1.0
    rl.hit("user:1", rates, algorithm="fixed_window")
    clock.t = T0 + 2.0

    denied = rl.hit("user:1", rates, algorithm="fixed_window")

    assert fields(denied) == (False, 3, 0, T0 + 60.0, 58.0)
    # the second's status is what it was before: 2 left, nothing used since T0+2
    assert status_fields(denied)[0] == (2, 2, T0 + 2.0, 1.0, True, 0.0)
    assert rl.peek("user:1", rates, algorithm="fixed_window").statuses[0].remaining == 2


def test_unlimited_rate_allows_everything_with_zero_limit_and_no_statuses(
    rl: RateLimiter, store: MemoryStore
) -> None:
    decisions = [rl.hit("user:1", "unlimited", cost=1000) for _ in range(3)]

    assert {fields(d) for d in decisions} == {(True, 0, 0, T0, 0.0)}
    assert decisions[0].statuses == ()
    assert store.stats().keys == 0


# --- Rate objects ---------------------------------------------------------------------


def trace(rl: RateLimiter, clock: Clock, rates: Any, algorithm: str) -> list[Any]:
    """Eighteen hits, two every 250 ms over two seconds, as (fields, statuses) pairs."""
    out = []
    for step in range(18):
        clock.t = T0 + (step // 2) * 0.25
        decision = rl.hit("user:1", rates, algorithm=algorithm)
        out.append((fields(decision), status_fields(decision)))
    return out


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_a_rate_object_limits_exactly_like_its_rate_string(algorithm: str) -> None:
    by_string, by_object = Clock(T0), Clock(T0)

    expected = trace(RateLimiter(MemoryStore(clock=by_string)), by_string, "3/second", algorithm)
    got = trace(RateLimiter(MemoryStore(clock=by_object)), by_object, Rate(3, SECOND_NS), algorithm)

    assert got == expected
    assert {d[0][0] for d in got} == {True, False}  # the trace does reach the limit


@pytest.mark.parametrize("container", [list, tuple])
@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_a_sequence_of_rates_limits_exactly_like_the_rate_string(
    algorithm: str, container: Callable[[list[Rate]], Any]
) -> None:
    by_string, by_objects = Clock(T0), Clock(T0)
    rates = container([Rate(3, SECOND_NS), Rate(5, MINUTE_NS)])

    expected = trace(
        RateLimiter(MemoryStore(clock=by_string)), by_string, "3/second;5/minute", algorithm
    )
    got = trace(RateLimiter(MemoryStore(clock=by_objects)), by_objects, rates, algorithm)

    assert got == expected


def test_an_empty_list_of_rates_limits_nothing(rl: RateLimiter) -> None:
    assert fields(rl.hit("user:1", [])) == (True, 0, 0, T0, 0.0)


def test_rates_sharing_a_window_are_refused(rl: RateLimiter) -> None:
    with pytest.raises(ValueError, match="share one window"):
        rl.hit("user:1", [Rate(5, SECOND_NS), Rate(6, SECOND_NS)])


def test_a_sequence_holding_something_other_than_rates_is_a_type_error(rl: RateLimiter) -> None:
    with pytest.raises(TypeError, match="a sequence of Rate"):
        rl.hit("user:1", ["5/second"])


def test_rates_of_the_wrong_type_are_a_type_error_naming_rates(rl: RateLimiter) -> None:
    with pytest.raises(TypeError, match="rates must be"):
        rl.hit("user:1", 5)  # type: ignore[arg-type]


# --- defaults ---------------------------------------------------------------------------


def test_default_algorithm_is_sliding_window(store: MemoryStore) -> None:
    rl = RateLimiter(store)

    assert rl.algorithm == DEFAULT_ALGORITHM == "sliding_window"
    assert fields(rl.hit("user:1", "5/second")) == (True, 5, 4, T0 + 2.0, 0.0)


def test_constructor_algorithm_is_the_default_and_each_call_may_override_it(
    store: MemoryStore,
) -> None:
    rl = RateLimiter(store, algorithm="token_bucket")

    assert fields(rl.hit("user:1", "5/second")) == (True, 5, 4, T0 + 0.2, 0.0)
    assert fields(rl.hit("user:2", "5/second", algorithm="fixed_window")) == (
        True, 5, 4, T0 + 1.0, 0.0,
    )  # fmt: skip


def test_decision_repr_shows_its_numbers(rl: RateLimiter) -> None:
    assert repr(rl.hit("user:1", "5/second", algorithm="fixed_window")) == (
        "Decision(allowed=True, limit=5, remaining=4, reset_at=1728001.000, retry_after=0.000)"
    )


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("cost", [0, -1, 1.5, True, "1"])
def test_cost_that_is_not_a_positive_integer_is_a_value_error_naming_cost(
    rl: RateLimiter, store: MemoryStore, cost: Any
) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"cost must be a positive integer, got {cost!r}")
    ):
        rl.hit("user:1", "5/second", cost=cost)
    with pytest.raises(ValueError, match="cost must be a positive integer"):
        rl.peek("user:1", "5/second", cost=cost)
    assert store.stats().keys == 0


@pytest.mark.parametrize(
    ("rates", "named"),
    [
        ("5/fortnight", "unknown time unit 'fortnight'"),
        ("five/second", "malformed rate 'five/second'"),
        ("5/second;10 per", "malformed rate '10 per'"),
        ("5/second;", "empty rate in '5/second;'"),
        ("0/second", "rate '0/second'"),
        ("5/second;6/s", "two rates share the window 1s"),
        ("5/second;unlimited", "'unlimited' cannot be combined"),
    ],
)
def test_malformed_rate_string_is_a_value_error_naming_the_bad_part(
    rl: RateLimiter, rates: str, named: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        rl.hit("user:1", rates)
    with pytest.raises(ValueError, match=re.escape(named)):
        rl.peek("user:1", rates)


def test_unknown_algorithm_in_a_call_is_a_value_error_naming_it_and_the_choices(
    rl: RateLimiter,
) -> None:
    expected = (
        "unknown algorithm 'leaky_bucket': choose one of "
        "fixed_window, sliding_log, sliding_window, token_bucket"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        rl.hit("user:1", "5/second", algorithm="leaky_bucket")
    with pytest.raises(ValueError, match=re.escape(expected)):
        rl.peek("user:1", "5/second", algorithm="leaky_bucket")


def test_unknown_algorithm_in_the_constructor_is_a_value_error_naming_it(
    store: MemoryStore,
) -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'gcra'"):
        RateLimiter(store, algorithm="gcra")
    with pytest.raises(ValueError, match="unknown algorithm 'gcra'"):
        AsyncRateLimiter(store, algorithm="gcra")


def test_empty_algorithm_name_is_a_value_error(rl: RateLimiter) -> None:
    with pytest.raises(ValueError, match="unknown algorithm ''"):
        rl.hit("user:1", "5/second", algorithm="")


@pytest.mark.parametrize(
    ("key", "type_name"), [(42, "int"), (b"user:1", "bytes"), (None, "NoneType")]
)
def test_key_that_is_not_a_string_is_a_type_error_naming_its_type(
    rl: RateLimiter, store: MemoryStore, key: Any, type_name: str
) -> None:
    with pytest.raises(TypeError, match=f"key must be a string, got {type_name}"):
        rl.hit(key, "5/second")
    with pytest.raises(TypeError, match=f"key must be a string, got {type_name}"):
        rl.peek(key, "5/second")
    assert store.stats().keys == 0


# --- the async twin ---------------------------------------------------------------------

# (seconds after T0, "hit" or "peek", key, rates, cost)
SCRIPT: list[tuple[float, str, str, Any, int]] = [
    (0.0, "peek", "a", "5/second;8/minute", 1),
    (0.0, "hit", "a", "5/second;8/minute", 1),
    (0.0, "hit", "a", "5/second;8/minute", 3),
    (0.0, "hit", "a", "5/second;8/minute", 2),
    (0.0, "hit", "a", "5/second;8/minute", 1),
    (0.0, "peek", "a", "5/second;8/minute", 1),
    (0.25, "hit", "b", [Rate(2, SECOND_NS)], 1),
    (0.5, "hit", "a", "5/second;8/minute", 6),
    (1.0, "hit", "a", "5/second;8/minute", 2),
    (1.0, "hit", "a", "5/second;8/minute", 1),
    (1.25, "peek", "a", "5/second;8/minute", 1),
    (1.5, "hit", "b", [Rate(2, SECOND_NS)], 2),
    (1.5, "hit", "b", [Rate(2, SECOND_NS)], 1),
    (2.75, "hit", "a", "5/second;8/minute", 1),
    (61.0, "hit", "a", "5/second;8/minute", 4),
    (61.0, "peek", "a", "5/second;8/minute", 2),
]


def summary(decision: Decision) -> tuple[Any, ...]:
    return (*fields(decision), status_fields(decision))


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
async def test_async_limiter_gives_the_same_decisions_as_the_sync_one(algorithm: str) -> None:
    sync_clock, async_clock = Clock(T0), Clock(T0)
    sync_rl = RateLimiter(MemoryStore(clock=sync_clock), algorithm=algorithm)
    async_rl = AsyncRateLimiter(MemoryStore(clock=async_clock), algorithm=algorithm)

    expected, got = [], []
    for offset, op, key, rates, cost in SCRIPT:
        sync_clock.t = async_clock.t = T0 + offset
        expected.append(summary(getattr(sync_rl, op)(key, rates, cost=cost)))
        got.append(summary(await getattr(async_rl, op)(key, rates, cost=cost)))

    assert got == expected
    assert {d[0] for d in expected} == {True, False}  # the script both allows and denies


async def test_async_limiter_defaults_to_sliding_window(store: MemoryStore) -> None:
    rl = AsyncRateLimiter(store)

    assert rl.algorithm == "sliding_window"
    assert fields(await rl.hit("user:1", "5/second")) == (True, 5, 4, T0 + 2.0, 0.0)
    assert fields(await rl.peek("user:1", "5/second")) == (True, 5, 4, T0 + 2.0, 0.0)


async def test_async_limiter_raises_the_same_errors(store: MemoryStore) -> None:
    rl = AsyncRateLimiter(store)

    with pytest.raises(ValueError, match="cost must be a positive integer, got 0"):
        await rl.hit("user:1", "5/second", cost=0)
    with pytest.raises(ValueError, match="unknown time unit 'fortnight'"):
        await rl.peek("user:1", "5/fortnight")
    with pytest.raises(ValueError, match="unknown algorithm 'leaky_bucket'"):
        await rl.hit("user:1", "5/second", algorithm="leaky_bucket")
    with pytest.raises(TypeError, match="key must be a string, got int"):
        await rl.hit(42, "5/second")  # type: ignore[arg-type]
    assert store.stats().keys == 0


# --- refusals remembered until the key could pass ------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_a_remembered_refusal_says_what_the_store_would_say(clock: Clock, algorithm: str) -> None:
    remembering = RateLimiter(MemoryStore(clock=clock), algorithm=algorithm)
    plain_store = MemoryStore(clock=clock)
    for _ in range(3):
        remembering.hit("k", "3/second")
        plain_store.apply(
            [(LimitSpec.of(ALGORITHMS[algorithm], Rate(3, SECOND_NS)), "k", 1, False)]
        )
    for step in range(4):  # refused, then refused again from memory as time passes
        clock.t = T0 + step * 0.05
        got = remembering.hit("k", "3/second")
        admitted, [expected] = plain_store.apply(
            [(LimitSpec.of(ALGORITHMS[algorithm], Rate(3, SECOND_NS)), "k", 1, False)]
        )
        assert (got.allowed, got.remaining) == (admitted, expected[1]) == (False, 0)
        assert got.reset_at == expected[2] / 1e9
        assert got.retry_after == pytest.approx(expected[3] / 1e9, abs=1e-9)
        assert got.statuses[0].allowed is False


def test_a_remembered_refusal_ends_when_the_key_could_pass(clock: Clock) -> None:
    rl = RateLimiter(MemoryStore(clock=clock), algorithm="fixed_window")
    for _ in range(2):
        rl.hit("k", "2/second")
    assert not rl.hit("k", "2/second").allowed
    clock.t = T0 + 1.0
    assert rl.hit("k", "2/second").allowed


def test_clearing_the_store_forgets_remembered_refusals(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    rl = RateLimiter(store, algorithm="sliding_log")
    for _ in range(3):
        rl.hit("k", "2/minute")
    store.clear()
    assert rl.hit("k", "2/minute").remaining == 1


def test_a_larger_hit_after_a_refusal_gets_its_own_exact_wait(clock: Clock) -> None:
    rl = RateLimiter(MemoryStore(clock=clock), algorithm="sliding_log")
    rl.hit("k", "3/second")
    clock.t = T0 + 0.5
    rl.hit("k", "3/second", cost=2)
    assert rl.hit("k", "3/second").retry_after == pytest.approx(0.5)  # the first unit leaves
    assert rl.hit("k", "3/second", cost=2).retry_after == pytest.approx(1.0)  # both must leave

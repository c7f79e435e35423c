"""Property tests: every algorithm against a brute-force reference model.

The models below are written from each algorithm's definition, with exact
rational arithmetic (``Fraction``) or plain lists of timestamps, and they find
``retry_after`` and ``reset_at`` by trying every nanosecond in turn rather than
by formula. Windows are a few nanoseconds long so that the search is cheap and
hypothesis lands on window boundaries all the time; the times are offset by a
realistic epoch (~1.7e18 ns) half of the time so big-number arithmetic and
windows that do not start at the offset are covered too.

The store is a real ``MemoryStore`` with a fake clock. Its clock returns epoch
seconds; a ``Fraction`` keeps them exact (``round(Fraction * 10**9)`` is an int).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.algorithms import ALGORITHMS
from ratekeeper.rates import Rate
from ratekeeper.stores.base import Charge, LimitSpec
from ratekeeper.stores.memory import MemoryStore

EPOCH = 1_700_000_000 * 1_000_000_000
SETTINGS = settings(max_examples=150, deadline=None)


# --- reference models ---------------------------------------------------------------------


class FixedWindowModel:
    """Units counted per clock-aligned window ``[i * W, (i + 1) * W)``."""

    def __init__(self, limit: int, window: int, capacity: int) -> None:
        self.limit, self.window, self.full = limit, window, limit
        self.counts: dict[int, int] = {}

    def room(self, t: int) -> int:
        return max(0, self.limit - self.counts.get(t // self.window, 0))

    def allows(self, t: int, cost: int) -> bool:
        return self.counts.get(t // self.window, 0) + cost <= self.limit

    def consume(self, t: int, cost: int) -> None:
        index = t // self.window
        self.counts[index] = self.counts.get(index, 0) + cost


class SlidingLogModel:
    """Every admitted unit's time; a unit admitted at ``x`` counts while ``t < x + W``."""

    def __init__(self, limit: int, window: int, capacity: int) -> None:
        self.limit, self.window, self.full = limit, window, limit
        self.times: list[int] = []

    def live(self, t: int) -> int:
        return sum(1 for x in self.times if x <= t < x + self.window)

    def room(self, t: int) -> int:
        return max(0, self.limit - self.live(t))

    def allows(self, t: int, cost: int) -> bool:
        return self.live(t) + cost <= self.limit

    def consume(self, t: int, cost: int) -> None:
        self.times = [x for x in self.times if t < x + self.window] + [t] * cost


class SlidingWindowModel:
    """Cloudflare's estimate: ``previous * (time left in window / W) + current``."""

    def __init__(self, limit: int, window: int, capacity: int) -> None:
        self.limit, self.window, self.full = limit, window, limit
        self.counts: dict[int, int] = {}

    def estimate(self, t: int) -> Fraction:
        index = t // self.window
        left = Fraction((index + 1) * self.window - t, self.window)
        return self.counts.get(index - 1, 0) * left + self.counts.get(index, 0)

    def room(self, t: int) -> int:
        return max(0, math.floor(self.limit - self.estimate(t)))

    def allows(self, t: int, cost: int) -> bool:
        return self.estimate(t) + cost <= self.limit

    def consume(self, t: int, cost: int) -> None:
        index = t // self.window
        self.counts[index] = self.counts.get(index, 0) + cost


class GcraModel:
    """The generic cell rate algorithm with a rational emission interval ``T = W / limit``.

    A request of ``cost`` conforms when ``max(TAT, t) + cost * T - tau <= t``,
    with ``tau = capacity * T``; conforming moves ``TAT`` to ``max(TAT, t) + cost * T``.
    """

    def __init__(self, limit: int, window: int, capacity: int) -> None:
        self.interval = Fraction(window, limit)
        self.tau = capacity * self.interval
        self.full = capacity
        self.tat: Fraction | None = None

    def _tat(self, t: int) -> Fraction:
        return Fraction(t) if self.tat is None or self.tat < t else self.tat

    def room(self, t: int) -> int:
        return max(0, math.floor((self.tau - (self._tat(t) - t)) / self.interval))

    def allows(self, t: int, cost: int) -> bool:
        return self._tat(t) + cost * self.interval - self.tau <= t

    def consume(self, t: int, cost: int) -> None:
        self.tat = self._tat(t) + cost * self.interval


MODELS: dict[str, Callable[[int, int, int], Any]] = {
    "fixed_window": FixedWindowModel,
    "sliding_log": SlidingLogModel,
    "sliding_window": SlidingWindowModel,
    "token_bucket": GcraModel,
}


def first_instant(start: int, horizon: int, condition: Callable[[int], bool]) -> int:
    """The first nanosecond ``t >= start`` where ``condition(t)``, searched one by one."""
    for t in range(start, start + horizon + 1):
        if condition(t):
            return t
    raise AssertionError(f"no instant within {horizon} ns of {start}")


def model_decision(
    models: list[Any], windows: list[int], now: int, cost: int
) -> tuple[bool, list[tuple[bool, int, int, int]]]:
    """What the store must answer for a batch charging ``cost`` to every model.

    All or nothing: the batch is admitted when every rate allows it; then each
    rate is consumed. ``reset_at`` when allowed is the first instant at which
    the rate (after this decision) has its whole quota back; ``retry_after``
    when denied is the first instant at which the same request would pass.
    """
    allows = [model.allows(now, cost) for model in models]
    admitted = all(allows)
    results = []
    for model, window, allowed in zip(models, windows, allows, strict=True):
        room = model.room(now)
        horizon = 3 * window + 2
        if allowed:
            after = copy.deepcopy(model)
            if admitted:
                after.consume(now, cost)
            reset = first_instant(now, horizon, lambda t, m=after: m.room(t) == m.full)
            results.append((True, room - cost if admitted else room, reset, 0))
        else:
            if cost > model.full:
                retry = window
            else:
                passes = first_instant(now + 1, horizon, lambda t, m=model: m.allows(t, cost))
                retry = passes - now
            results.append((False, room, now + retry, retry))
    if admitted:
        for model in models:
            model.consume(now, cost)
    return admitted, results


# --- scenarios ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> Fraction:
        return Fraction(self.now_ns, 1_000_000_000)


def make_store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)  # type: ignore[arg-type]  # exact seconds, not a float


@st.composite
def rates(draw: st.DrawFn, algorithm: str, count: int = 1) -> list[Rate]:
    """``count`` rates with distinct windows of a few nanoseconds."""
    windows = sorted(draw(st.sets(st.integers(1, 24), min_size=count, max_size=count)))
    result = []
    for window in windows:
        limit = draw(st.integers(1, 6))
        burst = None
        if algorithm == "token_bucket":
            burst = draw(st.none() | st.integers(1, 2 * limit))
        result.append(Rate(limit, window, burst))
    return result


@st.composite
def steps(draw: st.DrawFn, longest_window: int, most_cost: int) -> list[tuple[int | None, int]]:
    """``(gap, cost)`` pairs; a gap of ``None`` waits exactly the last retry_after."""
    gap = st.none() | st.integers(0, 2 * longest_window + 1) | st.just(0)  # often: same instant
    return draw(st.lists(st.tuples(gap, st.integers(1, most_cost)), min_size=1, max_size=30))


bases = st.integers(0, 10**6) | st.integers(EPOCH, EPOCH + 10**6)


def run_against_models(
    algorithm_name: str, rate_list: list[Rate], base: int, plan: list[tuple[int | None, int]]
) -> list[tuple[int, int, bool]]:
    """Drive the store and the models side by side; every answer must be equal.

    Returns every hit as ``(time, cost, admitted)``.
    """
    algorithm = ALGORITHMS[algorithm_name]
    specs = [LimitSpec.of(algorithm, rate) for rate in rate_list]
    models = [MODELS[algorithm_name](r.limit, r.window_ns, r.capacity) for r in rate_list]
    windows = [rate.window_ns for rate in rate_list]
    clock = FakeClock(base)
    store = make_store(clock)
    history = []
    last_retry = 0
    for gap, cost in plan:
        clock.now_ns += last_retry if gap is None else gap
        now = clock.now_ns
        charges: list[Charge] = [(spec, "k", cost, False) for spec in specs]
        expected = model_decision(models, windows, now, cost)
        admitted, results = store.apply(charges)
        assert (admitted, results) == expected, f"at {now - base} ns, cost {cost}"
        last_retry = max((result[3] for result in results), default=0)
        history.append((now, cost, admitted))
    return history


def most_in_one_span(history: list[tuple[int, int, bool]], window: int) -> int:
    """The most units admitted within any half-open span ``[s, s + window)``."""
    units = [(t, cost) for t, cost, admitted in history if admitted]
    return max(
        (sum(c for u, c in units if start <= u < start + window) for start, _ in units),
        default=0,
    )


def most_in_one_aligned_window(history: list[tuple[int, int, bool]], window: int) -> int:
    per_window: dict[int, int] = {}
    for t, cost, admitted in history:
        if admitted:
            per_window[t // window] = per_window.get(t // window, 0) + cost
    return max(per_window.values(), default=0)


@st.composite
def single_rate_scenario(
    draw: st.DrawFn, algorithm: str
) -> tuple[list[Rate], int, list[tuple[int | None, int]]]:
    rate_list = draw(rates(algorithm))
    (rate,) = rate_list
    return rate_list, draw(bases), draw(steps(rate.window_ns, rate.capacity + 1))


# --- exactness against the models -----------------------------------------------------------


@SETTINGS
@given(single_rate_scenario("sliding_log"))
def test_sliding_log_answers_exactly_as_the_timestamp_log_model(scenario: Any) -> None:
    rate_list, base, plan = scenario
    history = run_against_models("sliding_log", rate_list, base, plan)
    assert most_in_one_span(history, rate_list[0].window_ns) <= rate_list[0].limit


@SETTINGS
@given(single_rate_scenario("fixed_window"))
def test_fixed_window_answers_exactly_as_the_aligned_counter_model(scenario: Any) -> None:
    rate_list, base, plan = scenario
    (rate,) = rate_list
    history = run_against_models("fixed_window", rate_list, base, plan)
    assert most_in_one_aligned_window(history, rate.window_ns) <= rate.limit
    assert most_in_one_span(history, rate.window_ns) <= 2 * rate.limit


@SETTINGS
@given(single_rate_scenario("token_bucket"))
def test_token_bucket_answers_exactly_as_a_rational_gcra(scenario: Any) -> None:
    rate_list, base, plan = scenario
    (rate,) = rate_list
    history = run_against_models("token_bucket", rate_list, base, plan)
    # GCRA's own bound: capacity at once, then one unit per interval
    assert most_in_one_span(history, rate.window_ns) <= rate.capacity + rate.limit - 1


@SETTINGS
@given(single_rate_scenario("sliding_window"))
def test_sliding_window_answers_exactly_as_the_weighted_estimate(scenario: Any) -> None:
    rate_list, base, plan = scenario
    run_against_models("sliding_window", rate_list, base, plan)


@settings(max_examples=300, deadline=None)
@given(single_rate_scenario("sliding_window"))
def test_sliding_window_admits_at_most_limit_per_aligned_window_and_under_2n_per_span(
    scenario: Any,
) -> None:
    """The documented bound: never more than ``limit`` in one aligned window (the
    current count alone may not exceed it), hence at most ``2 * limit - 1`` in any
    span of one window length (``2 * limit`` would need a full window right after
    a full one, whose weight is not yet zero)."""
    rate_list, base, plan = scenario
    (rate,) = rate_list
    store_history = run_against_models("sliding_window", rate_list, base, plan)
    assert most_in_one_aligned_window(store_history, rate.window_ns) <= rate.limit
    assert most_in_one_span(store_history, rate.window_ns) <= 2 * rate.limit - 1


# --- all or nothing across rates ------------------------------------------------------------


@st.composite
def multi_rate_scenario(
    draw: st.DrawFn,
) -> tuple[str, list[Rate], int, list[tuple[int | None, int]]]:
    algorithm = draw(st.sampled_from(sorted(ALGORITHMS)))
    rate_list = draw(rates(algorithm, count=draw(st.integers(2, 3))))
    most_cost = max(rate.capacity for rate in rate_list) + 1
    plan = draw(steps(rate_list[-1].window_ns, most_cost))
    return algorithm, rate_list, draw(bases), plan


@settings(max_examples=200, deadline=None)
@given(multi_rate_scenario())
def test_several_rates_answer_exactly_as_their_models_charged_all_or_nothing(
    scenario: Any,
) -> None:
    algorithm, rate_list, base, plan = scenario
    run_against_models(algorithm, rate_list, base, plan)


@settings(max_examples=200, deadline=None)
@given(multi_rate_scenario())
def test_a_denied_hit_changes_no_rate_state(scenario: Any) -> None:
    algorithm_name, rate_list, base, plan = scenario
    algorithm = ALGORITHMS[algorithm_name]
    specs = [LimitSpec.of(algorithm, rate) for rate in rate_list]
    clock = FakeClock(base)
    store = make_store(clock)
    for gap, cost in plan:
        clock.now_ns += gap or 0
        charges: list[Charge] = [(spec, "k", cost, False) for spec in specs]
        probe: list[Charge] = [(spec, "k", 1, False) for spec in specs]
        before = store.apply(probe, consume=False), store.apply(charges, consume=False)
        admitted, results = store.apply(charges)
        after = store.apply(probe, consume=False), store.apply(charges, consume=False)
        if admitted:
            assert all(result[0] for result in results)
        else:
            assert before == after
            assert any(not result[0] for result in results)

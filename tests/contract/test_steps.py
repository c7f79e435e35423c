"""One decision's whole step (``Store.decide``) on every store of the matrix (conftest.py).

A step is blocks, then concurrency leases, then every rate, then the penalty,
decided in one atomic step (``stores/base.py``, :class:`Step`). Each test runs
the sync face and the async face, on memory, a standalone Redis and a 3-master
Redis Cluster, and looks at what the step left behind through the store's own
reads (``apply`` peeks, ``leases.in_use``, ``lockouts.status`` and ``blocks``):
a step writes exactly what those read. Every key carries the hash tag
``{u1}``, as the policy limiter's keys do, so a Cluster takes the step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ratekeeper import LockoutRule
from ratekeeper.algorithms import ALGORITHMS
from ratekeeper.rates import NS_PER_MS, Rate
from ratekeeper.stores import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    LimitSpec,
    Step,
    StepResult,
    Store,
)

MINUTE = LimitSpec.of(ALGORITHMS["fixed_window"], Rate(3, 60_000 * NS_PER_MS))
HOUR = LimitSpec.of(ALGORITHMS["fixed_window"], Rate(10, 3_600_000 * NS_PER_MS))
TIGHT = LimitSpec.of(ALGORITHMS["sliding_log"], Rate(1, 60_000 * NS_PER_MS))

API = "api:{u1}"
CAP = "cap:{u1}"
CONN = "conn:{u1}"
LOGIN = "login:{u1}"
PENALTY = "penalty:{u1}"

#: two refusals over a rate in a minute block the caller for 10 s
PENALTY_RULE = LockoutRule(threshold=2, window=60.0, block=10.0)
#: one failed login blocks for 30 s
LOGIN_RULE = LockoutRule(threshold=1, window=60.0, block=30.0)
TTL_NS = 30_000 * NS_PER_MS


def full_step(cost: int = 1, consume: bool = True) -> Step:
    """A lockout block, the penalty's block, a cap of 2, two rates and the penalty."""
    return Step(
        charges=[(MINUTE, API, cost, False), (HOUR, API, cost, False)],
        blocks=(LOGIN, PENALTY),
        leases=((CAP, 2, TTL_NS),),
        penalty=(PENALTY, PENALTY_RULE),
        consume=consume,
    )


@pytest.fixture(params=["sync", "async"])
def decide(request: pytest.FixtureRequest) -> Callable[[Store, Step], Any]:
    """``store.decide`` or ``store.decide_async``, as one awaitable call."""

    async def sync(store: Store, step: Step) -> StepResult:
        return store.decide(step)

    async def asynchronous(store: Store, step: Step) -> StepResult:
        return await store.decide_async(step)

    return sync if request.param == "sync" else asynchronous


def room(store: Store, spec: LimitSpec, key: str = API) -> int:
    """What ``spec`` has left for ``key`` now, by a peek that takes nothing."""
    _, (result,) = store.apply([(spec, key, 1, False)], consume=False)
    return result[1]


def trace(store: Store) -> tuple[Any, ...]:
    """Everything a step may write: both rates, the cap, the failure logs and blocks."""
    return (
        room(store, MINUTE),
        room(store, HOUR),
        store.leases.in_use(CAP),
        store.lockouts.status(LOGIN),
        store.lockouts.status(PENALTY),
    )


async def test_an_admitted_step_holds_its_leases_and_consumes_every_charge(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)

    result = await decide(store, full_step())

    assert result.outcome == ADMITTED
    assert result.admitted
    assert result.index == -1
    assert result.block is None
    assert result.now_ns == clock.now_ms * NS_PER_MS
    assert [allowed for allowed, *_ in result.results] == [True, True]
    assert [left for _, left, _, _ in result.results] == [2, 9]
    assert [key for key, _ in result.leases] == [CAP]
    assert store.leases.in_use(CAP) == 1
    assert (room(store, MINUTE), room(store, HOUR)) == (2, 9)
    # the slot is the store's own lease: released as one, once
    assert store.leases.release(CAP, result.leases[0][1]) is True
    assert store.leases.release(CAP, result.leases[0][1]) is False
    assert store.leases.in_use(CAP) == 0


async def test_a_step_refused_by_a_rate_holds_no_lease_consumes_nothing_and_counts_a_failure(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)
    for _ in range(3):  # the minute's 3, each slot given back
        admitted = await decide(store, full_step())
        store.leases.release(*admitted.leases[0])

    refused = await decide(store, full_step())

    assert refused.outcome == REFUSED_BY_RATE
    assert not refused.admitted
    assert refused.index == -1
    assert refused.leases == ()
    assert [result[0] for result in refused.results] == [False, True]
    assert refused.block is None  # one failure of the two that block
    assert store.leases.in_use(CAP) == 0
    assert (room(store, MINUTE), room(store, HOUR)) == (0, 7)  # the hour kept its 7
    assert store.lockouts.status(PENALTY).failures == 1
    assert not store.lockouts.status(PENALTY).blocked


async def test_the_refusal_that_reaches_the_penalty_threshold_starts_a_block_and_reports_it(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)
    step = full_step(cost=4)  # over the minute's 3: refused every time
    first = await decide(store, step)
    clock.now_ms += 1_000

    second = await decide(store, step)

    assert (first.outcome, first.block) == (REFUSED_BY_RATE, None)
    assert second.outcome == REFUSED_BY_RATE
    assert second.block is not None
    assert second.block.blocked
    assert second.block.key == PENALTY
    assert second.block.until_ns == (clock.now_ms + 10_000) * NS_PER_MS
    assert second.block.streak == 1
    status = store.lockouts.status(PENALTY)
    assert (status.until_ns, status.streak) == (second.block.until_ns, 1)
    assert [block.key for block in store.lockouts.blocks()] == [PENALTY]
    assert store.leases.in_use(CAP) == 0
    assert (room(store, MINUTE), room(store, HOUR)) == (3, 10)
    # the next step is answered by the penalty's block (the second of its blocks)
    clock.now_ms += 1_000
    blocked = await decide(store, full_step())
    assert (blocked.outcome, blocked.index, blocked.block) == (BLOCKED, 1, status)


async def test_a_step_refused_by_a_cap_charges_nothing_and_gives_back_the_slots_before_it(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)
    held = store.leases.acquire(CONN, 1, 30.0)  # the second cap is full
    step = Step(
        charges=[(MINUTE, API, 1, False), (HOUR, API, 1, False)],
        blocks=(LOGIN, PENALTY),
        leases=((CAP, 2, TTL_NS), (CONN, 1, TTL_NS)),
        penalty=(PENALTY, PENALTY_RULE),
    )
    before = trace(store)

    refused = await decide(store, step)

    assert (refused.outcome, refused.index) == (REFUSED_BY_CAP, 1)
    assert (refused.results, refused.leases, refused.block) == ([], (), None)
    assert trace(store) == before  # the first cap's slot given back, nothing charged
    assert store.leases.in_use(CONN) == 1
    assert store.lockouts.status(PENALTY).failures == 0  # a full cap is no penalty
    assert store.leases.release(CONN, held.lease_id) is True  # type: ignore[arg-type]
    assert (await decide(store, step)).outcome == ADMITTED


async def test_a_key_asked_twice_takes_two_slots(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)
    twice = Step(charges=[], leases=((CAP, 3, TTL_NS), (CAP, 3, TTL_NS)))

    first = await decide(store, twice)
    second = await decide(store, twice)
    peek = await decide(store, Step(charges=[], leases=twice.leases, consume=False))

    assert first.outcome == ADMITTED
    assert len({lease for _, lease in first.leases}) == 2
    assert (second.outcome, second.index) == (REFUSED_BY_CAP, 1)
    assert (peek.outcome, peek.index) == (REFUSED_BY_CAP, 1)
    assert store.leases.in_use(CAP) == 2


@pytest.mark.parametrize("blocked_key", [LOGIN, PENALTY], ids=["lockout", "penalty"])
async def test_a_blocked_step_reads_its_block_and_touches_nothing_else(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any, blocked_key: str
) -> None:
    store = store_factory(clock)
    admitted = await decide(store, full_step())  # a rate used, a slot held
    store.lockouts.record_failure(PENALTY, PENALTY_RULE)  # a failure on the log
    block = store.lockouts.record_failure(blocked_key, LOGIN_RULE)
    clock.now_ms += 1_000
    before = trace(store)

    results = [await decide(store, full_step(cost=cost)) for cost in (1, 4)]

    for result in results:  # admissible or over a rate, the block answers first
        assert result.outcome == BLOCKED
        assert not result.admitted
        assert result.index == (LOGIN, PENALTY).index(blocked_key)
        assert result.block == store.lockouts.status(blocked_key)
        assert result.block.until_ns == block.until_ns  # type: ignore[union-attr]
        assert (result.results, result.leases) == ([], ())
    assert trace(store) == before  # no lease, no charge, no failure
    assert store.leases.in_use(CAP) == 1
    assert admitted.outcome == ADMITTED


async def test_a_peek_answers_as_the_step_would_and_takes_nothing(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)
    before = trace(store)

    passes = await decide(store, full_step(consume=False))
    over = await decide(store, full_step(cost=4, consume=False))
    over_again = await decide(store, full_step(cost=4, consume=False))

    assert (passes.outcome, passes.leases) == (ADMITTED, ())
    assert [left for _, left, _, _ in passes.results] == [3, 10]  # what is left now
    assert over.outcome == over_again.outcome == REFUSED_BY_RATE
    assert over_again.block is None
    assert trace(store) == before  # no lease, no charge, no failure
    held = [store.leases.acquire(CAP, 2, 30.0) for _ in range(2)]
    full = await decide(store, full_step(consume=False))
    assert (full.outcome, full.index) == (REFUSED_BY_CAP, 0)
    assert store.leases.in_use(CAP) == len(held)


async def test_a_shadow_charge_never_refuses_and_is_consumed_only_when_it_has_room(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)
    step = Step(
        charges=[(MINUTE, API, 1, False), (TIGHT, API, 1, True)], leases=((CAP, 5, TTL_NS),)
    )

    first = await decide(store, step)
    second = await decide(store, step)

    assert first.outcome == second.outcome == ADMITTED
    assert [result[:2] for result in first.results] == [(True, 2), (True, 0)]
    assert [result[:2] for result in second.results] == [(True, 1), (False, 0)]
    assert room(store, MINUTE) == 1
    assert store.leases.in_use(CAP) == 2


async def test_a_peeked_charge_is_decided_in_the_step_but_never_consumed(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    """``Step.peeks``: Envoy's ``hits_addend: 0`` on one descriptor, a check inside the hit."""
    store = store_factory(clock)
    other = "other:{u1}"
    step = Step(charges=[(MINUTE, API, 1, False), (MINUTE, other, 1, False)], peeks=frozenset({1}))

    first = await decide(store, step)
    assert first.outcome == ADMITTED
    assert [result[:2] for result in first.results] == [(True, 2), (True, 3)]
    assert (room(store, MINUTE), room(store, MINUTE, other)) == (2, 3)

    store.apply([(MINUTE, other, 3, False)])  # the peeked counter is full now
    refused = await decide(store, step)
    assert refused.outcome == REFUSED_BY_RATE
    assert [result[0] for result in refused.results] == [True, False]
    assert room(store, MINUTE) == 2  # the refusal of the peek took nothing from the hit

    shadow_peek = Step(
        charges=[(MINUTE, API, 1, False), (MINUTE, other, 1, True)], peeks=frozenset({1})
    )
    passed = await decide(store, shadow_peek)
    assert passed.outcome == ADMITTED
    assert (room(store, MINUTE), passed.results[1][0]) == (1, False)


async def test_a_step_without_blocks_leases_or_penalty_answers_as_apply(
    store_factory: Callable[[Any], Store], clock: Any, decide: Any
) -> None:
    store = store_factory(clock)
    charges = [(MINUTE, API, 2, False), (HOUR, API, 2, False)]

    stepped = [await decide(store, Step(charges=charges)) for _ in range(2)]
    applied = store.apply(charges)

    assert [step.outcome for step in stepped] == [ADMITTED, REFUSED_BY_RATE]
    assert [left for _, left, _, _ in stepped[0].results] == [1, 8]
    assert applied == (False, stepped[1].results)


@pytest.mark.parametrize(
    "lease", [(CAP, 0, TTL_NS), (CAP, 2, 0)], ids=["cap below one", "ttl not positive"]
)
async def test_a_lease_ask_that_cannot_be_a_lease_is_a_value_error_before_anything_is_taken(
    store_factory: Callable[[Any], Store],
    clock: Any,
    decide: Any,
    lease: tuple[str, int, int],
) -> None:
    store = store_factory(clock)
    step = Step(charges=[(MINUTE, API, 1, False)], leases=((CONN, 2, TTL_NS), lease))

    with pytest.raises(ValueError, match=r"concurrency limit|lease ttl"):
        await decide(store, step)
    assert store.leases.in_use(CONN) == 0
    assert room(store, MINUTE) == 3


def test_threads_racing_steps_never_hold_more_slots_than_the_cap_and_leak_none(
    store_factory: Callable[[Any], Store], clock: Any
) -> None:
    store = store_factory(clock)
    plenty = LimitSpec.of(ALGORITHMS["fixed_window"], Rate(10_000, 3_600_000 * NS_PER_MS))
    step = Step(charges=[(plenty, API, 1, False)], leases=((CAP, 5, TTL_NS),))
    lock = threading.Lock()
    holders = [0, 0]  # now, most at once
    outcomes: list[int] = []

    def race(_: int) -> None:
        for _ in range(25):
            result = store.decide(step)
            outcomes.append(result.outcome)
            if result.admitted:
                with lock:
                    holders[0] += 1
                    holders[1] = max(holders)
                time.sleep(0.0005)
                with lock:
                    holders[0] -= 1
                store.leases.release(*result.leases[0])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(race, range(8)))

    assert len(outcomes) == 200
    assert set(outcomes) == {ADMITTED, REFUSED_BY_CAP}
    assert holders[1] <= 5
    assert store.leases.in_use(CAP) == 0


def test_every_store_is_a_store_and_says_what_it_can_do(
    store_factory: Callable[[Any], Store], clock: Any, request: pytest.FixtureRequest
) -> None:
    store = store_factory(clock)
    kind = request.node.callspec.id

    assert isinstance(store, Store)
    assert (store.never_waits, store.one_slot) == {
        "memory": (True, False),
        "redis": (False, False),
        "redis-cluster": (False, True),
    }[kind]

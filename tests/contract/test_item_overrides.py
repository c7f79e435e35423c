"""Per-item rate overrides (``check_items(overrides=...)``) on every store of the matrix.

Envoy's descriptor ``limit``: the item is charged one clock-aligned fixed
window of the given rate under a counter named by the caller's text, in
place of its category's rates, inside the same all-or-nothing step. Each test
runs the sync and the async limiter on memory, a standalone Redis and a
3-master Redis Cluster (conftest.py), under the fake clock.

On a Cluster a decision keeps to one slot: an override's counter is its own
hash tag, so it shares a call only with overrides of the same counter text
(any rates); the tests that put it beside a normal item run where a decision
may take two slots, and the Cluster answers those with its clear ValueError.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from ratekeeper import AsyncLimiter, Limiter, PolicyDecision
from ratekeeper.identity import Caller
from ratekeeper.policy import policy_from_text
from ratekeeper.rates import NS_PER_SECOND, Rate
from ratekeeper.stores import Store

POLICY = """\
version: 1
limits:
  logins: {by: ip, rate: 5/minute}
  api: {by: api_key, rate: 3/minute, algorithm: fixed_window}
plans:
  free: {limits: {api: 3/minute}}
keys:
  - {key: k1, id: one, plan: free}
categories:
  - {name: login, match: POST /login, charge: [logins], require_key: false}
  - {name: api, match: /api/**, charge: [api]}
"""

MINUTE_NS = 60 * NS_PER_SECOND
ONE = Caller(api_key="k1")
ANYONE = Caller(client_ip="192.0.2.1")
#: Envoy's descriptor as the lead's mapping would name it: domain and every entry
COUNTER = "flowtriq|generic_key=heartbeat|node=n1"

Check = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def limiter_on(request: pytest.FixtureRequest) -> Callable[[Store], Check]:
    """Builds the policy's limiter on a store; gives its ``check_items`` as one awaitable call."""

    def build(store: Store) -> Check:
        policy = policy_from_text(textwrap.dedent(POLICY), name="t")
        if request.param == "sync":
            limiter = Limiter(policy, store)

            async def check(items: Any, **options: Any) -> PolicyDecision:
                return limiter.check_items(items, **options)

            return check
        twin = AsyncLimiter(policy, store)

        async def check_async(items: Any, **options: Any) -> PolicyDecision:
            return await twin.check_items(items, **options)

        return check_async

    return build


@pytest.fixture
def store(store_factory: Callable[[Any], Store], clock: Any) -> Store:
    return store_factory(clock)


@pytest.fixture
def check(store: Store, limiter_on: Callable[[Store], Check]) -> Check:
    return limiter_on(store)


@pytest.fixture
def one_slot(store: Store) -> bool:
    """Whether the store under test keeps a decision on one slot (Redis Cluster)."""
    return bool(getattr(store, "one_slot", False))


def per_minute(limit: int) -> Rate:
    return Rate(limit, MINUTE_NS)


async def admitted(check: Check, items: Any, times: int, **options: Any) -> list[bool]:
    return [(await check(items, **options)).allowed for _ in range(times)]


async def test_an_override_alone_admits_its_rate_in_one_fixed_window(
    check: Check, clock: Any
) -> None:
    decisions = [
        await check([(None, ANYONE)], overrides=[(per_minute(3), COUNTER)]) for _ in range(5)
    ]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    first = decisions[0]
    assert first.item_ends == (1,)
    (status,) = first.statuses
    assert (status.limit, status.window, status.name, status.shadow) == (3, 60.0, "override", False)
    assert status.key.startswith("t:override:3/minute:{")
    assert status.key.endswith("}")
    assert decisions[-1].retry_after == 60.0  # T0 is the top of a minute
    assert decisions[-1].status_code == 429
    assert first.headers["X-RateLimit-Limit"] == "3"


async def test_the_window_is_aligned_to_the_clock_not_to_the_first_hit(
    check: Check, clock: Any
) -> None:
    t0 = clock.now_ms  # the top of a minute (the vectors' t0, a whole day)
    clock.now_ms = t0 + 45_000  # 15 s before the next minute
    items, overrides = [(None, ANYONE)], [(per_minute(2), COUNTER)]

    assert await admitted(check, items, 3, overrides=overrides) == [True, True, False]
    clock.now_ms = t0 + 59_999
    refused = await check(items, overrides=overrides)
    assert (refused.allowed, refused.retry_after) == (False, 0.001)
    clock.now_ms = t0 + 60_000  # a new window, 15 s after the first hit
    assert await admitted(check, items, 3, overrides=overrides) == [True, True, False]


async def test_two_rates_on_one_counter_text_are_two_counters(check: Check, clock: Any) -> None:
    items = [(None, ANYONE)]

    assert await admitted(check, items, 3, overrides=[(per_minute(2), COUNTER)]) == [
        True, True, False,
    ]  # fmt: skip
    # the same unit, another limit: a counter of its own (the reference would share it)
    assert await admitted(check, items, 4, overrides=[(per_minute(3), COUNTER)]) == [
        True, True, True, False,
    ]  # fmt: skip
    # another unit: its own counter too
    per_second = Rate(2, NS_PER_SECOND)
    assert await admitted(check, items, 3, overrides=[(per_second, COUNTER)]) == [
        True, True, False,
    ]  # fmt: skip
    # and another text: another counter
    other = [(per_minute(2), COUNTER + "x")]
    assert await admitted(check, items, 3, overrides=other) == [True, True, False]


async def test_overrides_on_one_counter_text_are_all_or_nothing(check: Check) -> None:
    """Two rates of one text share a slot: decided in one step on every store."""
    items = [(None, ANYONE), (None, ANYONE)]
    overrides = [(per_minute(5), COUNTER), (per_minute(2), COUNTER)]

    assert await admitted(check, items, 3, overrides=overrides) == [True, True, False]

    refused = await check(items, overrides=overrides)
    assert refused.item_ends == (1, 2)
    assert [(s.limit, s.allowed) for s in refused.statuses] == [(5, True), (2, False)]
    assert [s.remaining for s in refused.statuses] == [3, 0]  # the refusal took nothing
    alone = await check([(None, ANYONE)], overrides=[(per_minute(5), COUNTER)])
    assert alone.remaining == 2  # its third hit: the refused pair took none


async def test_a_peek_on_an_override_is_decided_and_never_consumed(check: Check) -> None:
    items, overrides = [(None, ANYONE)], [(per_minute(2), COUNTER)]

    for _ in range(3):
        peek = await check(items, costs=[0], overrides=overrides)
        assert (peek.allowed, peek.remaining) == (True, 2)
    assert await admitted(check, items, 2, overrides=overrides) == [True, True]
    full = await check(items, costs=[0], overrides=overrides)
    assert (full.allowed, full.remaining) == (False, 0)
    heavy = await check(items, overrides=[(per_minute(5), COUNTER)], costs=[4])
    assert (heavy.allowed, heavy.remaining) == (True, 1)  # costs[i] is the override's units


async def test_an_override_beside_a_normal_item_is_decided_in_one_step(
    check: Check, one_slot: bool
) -> None:
    items = [("api", ONE), ("api", ONE)]
    overrides = [None, (per_minute(5), COUNTER)]
    if one_slot:  # {one} and the counter's tag: two slots
        with pytest.raises(ValueError, match="2 identities"):
            await check(items, overrides=overrides)
        return

    decisions = [await check(items, overrides=overrides) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0].item_ends == (1, 2)
    assert [(s.name, s.limit, s.remaining) for s in decisions[2].statuses] == [
        ("api", 3, 0), ("override", 5, 2),
    ]  # fmt: skip
    # the normal item refused: the override took nothing
    assert [s.allowed for s in decisions[3].statuses] == [False, True]
    assert [s.remaining for s in decisions[3].statuses] == [0, 2]
    decision = await check([(None, ANYONE)], overrides=[(per_minute(5), COUNTER)])
    assert decision.remaining == 1  # its fourth hit


async def test_an_override_refusing_refuses_the_normal_items_too(
    check: Check, one_slot: bool
) -> None:
    if one_slot:
        pytest.skip("a normal item and an override are two slots on a Cluster (above)")
    tight = [(None, ANYONE)], [(per_minute(1), COUNTER)]
    assert (await check(tight[0], overrides=tight[1])).allowed

    pair = await check([("api", ONE), (None, ANYONE)], overrides=[None, tight[1][0]])

    assert (pair.allowed, pair.category, pair.plan, pair.key_id) == (False, "api", "free", "one")
    alone = await check([("api", ONE)])
    assert alone.remaining == 2  # the api counter's first hit: the pair took nothing


async def test_an_override_counts_apart_from_its_category_s_counters(check: Check) -> None:
    overridden = [(per_minute(5), COUNTER)]

    assert await admitted(check, [("api", ONE)], 6, overrides=overridden) == [
        True, True, True, True, True, False,
    ]  # fmt: skip
    # the category's own counter (3/minute by key) was never charged
    assert await admitted(check, [("api", ONE)], 4) == [True, True, True, False]
    # and spending it left the override's counter as it was
    assert not (await check([("api", ONE)], overrides=overridden)).allowed
    assert (await check([(None, ANYONE)], overrides=[(per_minute(6), COUNTER)])).allowed


async def test_a_rate_past_what_a_fixed_window_counts_is_refused_before_anything(
    check: Check,
) -> None:
    good = (per_minute(2), COUNTER)
    bad_rates = [
        (Rate(10**12 + 1, MINUTE_NS), "is above 1,000,000,000,000"),
        (Rate(1, 366 * 86_400 * NS_PER_SECOND), "longer than 365 days"),
        (Rate(1, 1_500_000_500), "whole number of milliseconds"),
    ]
    for bad, why in bad_rates:
        with pytest.raises(ValueError, match=why):
            await check(
                [(None, ANYONE), ("api", ONE), (None, ANYONE)], overrides=[good, None, (bad, "b")]
            )
    with pytest.raises(ValueError, match="cost"):
        await check([(None, ANYONE)], overrides=[good], costs=[10**12 + 1])

    assert await admitted(check, [(None, ANYONE)], 3, overrides=[good]) == [True, True, False]
    assert (await check([("api", ONE)])).remaining == 2  # nothing was taken before


async def test_on_a_cluster_two_counters_in_one_call_are_the_clear_one_slot_error(
    check: Check, one_slot: bool
) -> None:
    items = [(None, ANYONE), (None, ANYONE)]
    overrides = [(per_minute(2), COUNTER), (per_minute(2), "another descriptor")]
    if not one_slot:
        pair = await check(items, overrides=overrides)
        assert (pair.allowed, pair.item_ends) == (True, (1, 2))
        return
    with pytest.raises(ValueError, match="one slot") as refused:
        await check(items, overrides=overrides)
    assert "2 identities" in str(refused.value)
    # nothing was charged: the first counter still has its two
    assert await admitted(check, items[:1], 3, overrides=overrides[:1]) == [True, True, False]

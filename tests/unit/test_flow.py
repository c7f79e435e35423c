"""The decision flow is written once and run by thin sync and async runners.

The flow yields one store step and turns the result into the decision; a
store with its own ``decide`` performs the step in one call, any other store
through the adapter (today's separate calls, in the same order). These tests
pin what a step asks, that both runners and both ways to perform a step
answer alike, and the entry at "plan" (several (category, caller) items in one
step).
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore, PolicyDecision
from ratekeeper.engine import OVER_CAP, run
from ratekeeper.engine._stepping import stepper
from ratekeeper.identity import Caller
from ratekeeper.policy import policy_from_text
from ratekeeper.stores.base import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    Step,
    StepResult,
    StoreUnavailableError,
)
from ratekeeper.stores.lockouts import LockoutRule
from support.calls_step import decide_in_calls
from support.clock import Clock
from support.policies import answer

T0 = 1_700_000_040.0
NS = 1_000_000_000

POLICY = """\
version: 1
limits:
  api: {by: api_key, rate: 3/minute, algorithm: fixed_window}
  burst: {by: api_key, rate: 2/second, algorithm: fixed_window}
  slots: {by: api_key, concurrency: 1}
  logins: {by: ip, rate: 5/minute}
plans:
  free: {limits: {api: 3/minute, burst: 2/second, slots: 1}}
keys:
  - {key: k1, id: one, plan: free}
  - {key: k2, id: two, plan: free}
categories:
  - {name: login, match: POST /login, charge: [logins], require_key: false}
  - {name: api, match: /api/**, charge: [api, burst, slots]}
lockouts:
  login: {categories: [login], failure_status: [401], by: ip, threshold: 2, window: 1 minute,
          block: 1 minute}
penalty: {rejections: 3, window: 1 minute, block: 10 minutes, by: api_key}
"""


def policy() -> Any:
    return policy_from_text(textwrap.dedent(POLICY), name="t")


class _Deciding(MemoryStore):
    """A store that performs steps with the calls of before steps (the reference), and keeps
    what it was asked."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps: list[Step] = []

    def decide(self, step: Step) -> StepResult:
        self.steps.append(step)
        return decide_in_calls(self, step)

    async def decide_async(self, step: Step) -> StepResult:
        return self.decide(step)


#: (seconds since T0, method, path, API key, response status for the lockouts)
TRAFFIC = [
    *((0.0, "GET", "/api/x", "k1", 200) for _ in range(4)),
    (0.0, "GET", "/api/x", "k2", 200),
    *((0.5, "POST", "/login", None, 401) for _ in range(3)),
    *((1.0, "GET", "/api/x", "k1", 200) for _ in range(4)),
    (61.0, "GET", "/api/x", "k1", 200),
    (61.0, "POST", "/login", None, 200),
    (700.0, "GET", "/api/x", "k1", 200),
]


def through(limiter: Limiter, clock: Clock, held: bool = False) -> list[tuple[Any, ...]]:
    """Every answer, holding each request's lease while the next one comes (``held``)."""
    answers, holding = [], []
    for offset, method, path, key, status in TRAFFIC:
        clock.t = T0 + offset
        headers = {"X-API-Key": key} if key else None
        decision = limiter.check(
            method=method, path=path, headers=headers, client_ip="192.0.2.1", lease=True
        )
        answers.append((*answer(limiter, decision), decision.outcome, decision.refused_by))
        limiter.record_response(decision, status)
        holding.append(decision)
        if not held:
            limiter.release(holding.pop())
    return answers


@pytest.mark.parametrize("held", [False, True])
def test_a_store_s_own_step_and_the_adapter_answer_alike(held: bool) -> None:
    own_clock, calls_clock = Clock(T0), Clock(T0)
    store = _Deciding(clock=own_clock)
    own = Limiter(policy(), store)
    calls = Limiter(policy(), MemoryStore(clock=calls_clock))

    got = through(own, own_clock, held)

    assert got == through(calls, calls_clock, held)
    assert len(store.steps) == len(TRAFFIC)  # one step per request, however it ended
    outcomes = {entry[-2] for entry in got}
    assert {"admitted", "blocked"} <= outcomes
    # held leases: the key's one slot is taken, so its requests are over the cap instead
    assert (OVER_CAP in outcomes, "limited" in outcomes) == (held, not held)


def test_a_step_asks_for_the_blocks_the_leases_the_charges_and_the_penalty() -> None:
    store = _Deciding(clock=Clock(T0))
    limiter = Limiter(policy(), store)

    limiter.check(path="/api/x", headers={"X-API-Key": "k1"}, client_ip="192.0.2.1", lease=True)
    limiter.check(path="/api/x", headers={"X-API-Key": "k1"}, client_ip="192.0.2.1")

    leased, unleased = store.steps
    assert [key for _, key, _, _ in leased.charges] == ["t:api:{one}", "t:burst:{one}"]
    assert leased.blocks == ("t:penalty:{one}",)
    assert leased.leases == (("t:slots:{one}", 1, 60 * NS),)
    assert leased.penalty == ("t:penalty:{one}", LockoutRule(3, 60.0, 600.0, 1.0, None))
    assert (unleased.leases, unleased.consume) == ((), True)


def test_a_client_blocked_is_refused_before_a_counter_remembered_over_its_limit() -> None:
    store = _Deciding(clock=Clock(T0))
    remembering = Limiter(policy(), store, remember_refusals=True)
    other = Limiter(policy(), store)  # another process on the same store
    key = {"X-API-Key": "k1"}

    def check(limiter: Limiter) -> str:
        return limiter.check(path="/api/x", headers=key, client_ip="192.0.2.1").outcome

    # the burst limit (2 a second) refuses the third: remembered here, one penalty failure;
    # two more refusals elsewhere and the penalty (3 refusals) blocks the key
    assert [check(remembering) for _ in range(3)] == ["admitted"] * 2 + ["limited"]
    assert [check(other) for _ in range(2)] == ["limited"] * 2
    store.steps.clear()
    blocked = remembering.check(path="/api/x", headers=key, client_ip="192.0.2.1")

    assert (blocked.outcome, blocked.refused_by) == ("blocked", "penalty")
    assert [(step.charges, step.blocks) for step in store.steps] == [((), ("t:penalty:{one}",))]


async def test_the_async_runner_answers_as_the_sync_one() -> None:
    sync_clock, async_clock = Clock(T0), Clock(T0)
    sync = Limiter(policy(), MemoryStore(clock=sync_clock))
    asynchronous = AsyncLimiter(policy(), _Deciding(clock=async_clock))
    got = []
    for offset, method, path, key, status in TRAFFIC:
        async_clock.t = T0 + offset
        headers = {"X-API-Key": key} if key else None
        decision = await asynchronous.check(
            method=method, path=path, headers=headers, client_ip="192.0.2.1", lease=True
        )
        got.append((*answer(asynchronous, decision), decision.outcome, decision.refused_by))
        await asynchronous.record_response(decision, status)
        await asynchronous.release(decision)

    assert got == through(sync, sync_clock)


class _Failing(MemoryStore):
    """Leases work, the charges' step fails: the store went away mid-step."""

    def apply(self, charges: Any, consume: bool = True) -> Any:
        raise StoreUnavailableError("gone")


def test_the_adapter_gives_back_the_leases_when_the_store_fails_mid_step() -> None:
    store = _Failing(clock=Clock(T0))
    step = Step((), leases=(("cap", 1, NS),))
    with pytest.raises(StoreUnavailableError):
        decide_in_calls(store, Step(_charges(), leases=(("cap", 1, NS),)))
    assert store.leases.in_use("cap") == 0
    assert decide_in_calls(store, step).outcome == ADMITTED  # a step without charges


def _charges() -> Any:
    limiter = Limiter(policy(), MemoryStore(clock=Clock(T0)))
    prepared = limiter.prepare("GET", "/api/x", {"X-API-Key": "k1"}, "192.0.2.1", 1)
    return prepared.charges  # type: ignore[union-attr]


def test_the_adapter_decides_blocks_then_caps_then_rates_then_the_penalty() -> None:
    clock = Clock(T0)
    store = MemoryStore(clock=clock)
    charges = _charges()
    rule = LockoutRule(1, 60.0, 60.0)
    full = Step(charges, blocks=("b",), leases=(("a", 1, NS), ("cap", 1, NS)), penalty=("p", rule))

    store.leases.acquire("cap", 1, 1.0)
    over_cap = decide_in_calls(store, full)
    assert (over_cap.outcome, over_cap.index, over_cap.results) == (REFUSED_BY_CAP, 1, [])
    assert store.leases.in_use("a") == 0  # the lease taken before the full cap came back

    store.lockouts.record_failure("b", rule)
    assert decide_in_calls(store, full).outcome == BLOCKED
    assert store.leases.in_use("a") == 0

    store.lockouts.unblock("b")
    fresh = Step(charges, penalty=("p", rule))
    decided = [decide_in_calls(store, fresh) for _ in range(3)]  # burst: 2 a second
    assert [r.outcome for r in decided] == [ADMITTED, ADMITTED, REFUSED_BY_RATE]
    assert [len(r.results) for r in decided] == [2, 2, 2]
    penalty = decided[2].block
    assert penalty is not None
    assert (penalty.key, penalty.blocked) == ("p", True)
    assert decided[2].now_ns == round(T0 * NS)

    refused = decide_in_calls(store, Step(charges, leases=(("a", 1, NS),)))
    assert (refused.outcome, refused.leases, store.leases.in_use("a")) == (REFUSED_BY_RATE, (), 0)
    clock.t += 1
    taken = decide_in_calls(store, Step(charges, leases=(("a", 1, NS),)))
    assert (taken.outcome, store.leases.in_use("a")) == (ADMITTED, 1)
    assert [key for key, _ in taken.leases] == ["a"]


def test_run_drives_a_flow_and_throws_a_failing_store_into_it() -> None:
    def flow() -> Any:
        try:
            result = yield Step(())
        except StoreUnavailableError:
            return "unavailable"
        return result.outcome

    def failing(step: Step) -> StepResult:
        raise StoreUnavailableError("gone")

    assert run(flow(), stepper(MemoryStore())) == ADMITTED
    assert run(flow(), stepper(_Deciding())) == ADMITTED  # the store's own decide
    assert run(flow(), failing) == "unavailable"


# entering the flow at "plan"


def test_one_item_is_decided_as_check_decides_its_request() -> None:
    item_clock, check_clock = Clock(T0), Clock(T0)
    items = Limiter(policy(), MemoryStore(clock=item_clock))
    checks = Limiter(policy(), MemoryStore(clock=check_clock))

    for _ in range(6):
        by_item = items.check_items([("api", Caller(client_ip="192.0.2.1", api_key="k1"))])
        by_request = checks.check(path="/api/x", headers={"X-API-Key": "k1"}, client_ip="192.0.2.1")
        assert _numbers(by_item) == _numbers(by_request)
        assert (by_item.method, by_item.path) == ("", "")


def _numbers(decision: PolicyDecision) -> tuple[Any, ...]:
    return (
        decision.allowed, decision.status_code, decision.limit, decision.remaining,
        decision.reset_at, decision.statuses, decision.key_id, decision.plan, decision.headers,
    )  # fmt: skip


def test_items_are_decided_together_all_or_nothing() -> None:
    clock = Clock(T0)
    limiter = Limiter(policy(), MemoryStore(clock=clock))
    one, two = Caller(client_ip="192.0.2.1", api_key="k1"), Caller(api_key="k2")
    for _ in range(3):
        assert limiter.check_items([("api", one)]).allowed
        clock.t += 1  # past the burst limit's second

    both = limiter.check_items([("api", two), ("api", one)])

    assert (both.allowed, both.key_id, both.category) == (False, "two", "api")
    assert [s.key for s in both.statuses if not s.allowed] == ["t:api:{one}"]
    alone = limiter.check_items([("api", two)])
    assert (alone.allowed, alone.limit, alone.remaining) == (True, 2, 1)  # the pair took nothing


def test_items_are_identified_as_requests_are() -> None:
    limiter = Limiter(policy(), MemoryStore(clock=Clock(T0)))

    assert limiter.check_items([("api", Caller())]).status_code == 401
    assert limiter.check_items([("api", Caller(api_key="nope"))]).status_code == 401
    login = limiter.check_items([("login", Caller(client_ip="192.0.2.1"))])
    assert (login.allowed, login.statuses[0].key) == (True, "t:logins:{192.0.2.1}")
    with pytest.raises(ValueError, match="unknown category 'nope'"):
        limiter.check_items([("nope", Caller())])
    with pytest.raises(ValueError, match="no items"):
        limiter.check_items([])


def test_items_with_leases_take_them_in_the_same_step() -> None:
    limiter = Limiter(policy(), MemoryStore(clock=Clock(T0)))
    caller = Caller(api_key="k1")

    held = limiter.check_items([("api", caller)], lease=True)
    over = limiter.check_items([("api", caller)], lease=True)

    assert held.allowed
    assert held.lease is not None
    assert len(held.lease) == 1
    assert (over.outcome, over.refused_by) == (OVER_CAP, "cap:slots")
    limiter.release(held)
    assert limiter.check_items([("api", caller)], lease=True).allowed


def test_the_async_limiter_decides_items_too() -> None:
    limiter = AsyncLimiter(policy(), MemoryStore(clock=Clock(T0)))
    decision = asyncio.run(limiter.check_items([("api", Caller(api_key="k1"))], cost=2))
    assert (decision.allowed, decision.remaining) == (True, 0)


class _NoLeanPath:
    """A store offering only the protocol: no ``apply_one`` (the memory store's private path)."""

    def __init__(self, inner: MemoryStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("apply_one", "apply_one_async"):
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_a_store_without_a_lean_one_charge_path_is_asked_through_apply() -> None:
    """``apply_one`` is no duty of a store: one charge then goes through ``apply``."""
    from ratekeeper import AsyncRateLimiter, RateLimiter

    lean, plain = Clock(T0), Clock(T0)
    expected = Limiter(policy(), MemoryStore(clock=lean))
    limiter = Limiter(policy(), _NoLeanPath(MemoryStore(clock=plain)))  # type: ignore[arg-type]
    assert through(limiter, plain) == through(expected, lean)

    rate_limiter = RateLimiter(_NoLeanPath(MemoryStore(clock=Clock(T0))))  # type: ignore[arg-type]
    assert [rate_limiter.hit("k", "2/minute").allowed for _ in range(3)] == [True, True, False]
    twin = AsyncRateLimiter(_NoLeanPath(MemoryStore(clock=Clock(T0))))  # type: ignore[arg-type]
    assert [(await twin.hit("k", "2/minute")).allowed for _ in range(3)] == [True, True, False]


# per-item costs: 0 is a peek inside the step (Envoy's hits_addend 0 on one descriptor)


def test_an_item_of_cost_zero_is_checked_in_the_step_but_never_consumed() -> None:
    clock = Clock(T0)
    limiter = Limiter(policy(), MemoryStore(clock=clock))
    one, two = Caller(api_key="k1"), Caller(api_key="k2")

    pair = limiter.check_items([("api", one), ("api", two)], costs=[1, 0])

    assert pair.allowed
    assert pair.item_ends == (2, 4)
    assert [(s.key, s.remaining) for s in pair.statuses] == [
        ("t:api:{one}", 2), ("t:burst:{one}", 1), ("t:api:{two}", 3), ("t:burst:{two}", 2),
    ]  # fmt: skip
    alone = limiter.check_items([("api", two)])
    assert (alone.limit, alone.remaining) == (2, 1)  # the peek took nothing: this is its first


def test_a_peeked_item_over_its_limit_refuses_every_item_and_nothing_is_consumed() -> None:
    clock = Clock(T0)
    limiter = Limiter(policy(), MemoryStore(clock=clock))
    one, two = Caller(api_key="k1"), Caller(api_key="k2")
    for _ in range(2):
        assert limiter.check_items([("login", Caller(client_ip="192.0.2.9")), ("api", two)])
    # k2's burst (2/second) is spent: peeking it refuses the pair

    pair = limiter.check_items([("api", one), ("api", two)], costs=[1, 0])

    assert (pair.allowed, pair.status_code) == (False, 429)
    assert [s.allowed for s in pair.statuses] == [True, True, True, False]
    assert limiter.check_items([("api", one)]).remaining == 1  # one's burst was not taken


def test_item_costs_are_checked_before_anything_is_decided() -> None:
    limiter = Limiter(policy(), MemoryStore(clock=Clock(T0)))
    caller = Caller(api_key="k1")
    with pytest.raises(ValueError, match="1 costs for 2 items"):
        limiter.check_items([("api", caller), ("api", caller)], costs=[1])
    with pytest.raises(ValueError, match="whole number >= 0, got -1"):
        limiter.check_items([("api", caller)], costs=[-1])
    heavy = limiter.check_items([("api", caller)], costs=[2])
    assert (heavy.allowed, heavy.remaining) == (True, 0)


def test_item_ends_count_no_rates_for_an_exempt_item() -> None:
    text = POLICY.replace(
        "categories:\n", "categories:\n  - {name: health, match: /health, exempt: true}\n"
    )
    limiter = Limiter(policy_from_text(text, name="t"), MemoryStore(clock=Clock(T0)))
    items = [("health", Caller()), ("api", Caller(api_key="k1"))]
    decision = limiter.check_items(items, costs=[0, 1])
    assert (decision.allowed, decision.item_ends) == (True, (0, 2))


def test_the_async_limiter_peeks_items_too() -> None:
    limiter = AsyncLimiter(policy(), MemoryStore(clock=Clock(T0)))
    items = [("api", Caller(api_key="k1")), ("api", Caller(api_key="k2"))]
    decision = asyncio.run(limiter.check_items(items, costs=[0, 2]))
    assert [s.remaining for s in decision.statuses] == [3, 2, 1, 0]

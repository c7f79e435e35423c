"""What an item's rate override keeps of the item, and what an item without a category reports.

``check_items(overrides=...)`` replaces only the category's rate limits
(tests/contract/test_item_overrides.py counts them on every store): identity,
plans, 401/400, concurrency caps, lockouts and exemptions stay; an item with
no category is its override's charge alone and reports a category of the call.
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore
from ratekeeper.engine import BLOCKED, EXEMPT, OVER_CAP, DecisionEvent
from ratekeeper.identity import Caller
from ratekeeper.policy import policy_from_text
from ratekeeper.rates import NS_PER_SECOND, Rate
from support.clock import Clock

T0 = 1_700_000_040.0  # the top of a minute

POLICY = """\
version: 1
limits:
  logins: {by: ip, rate: 5/minute}
  api: {by: api_key, rate: 3/minute, algorithm: fixed_window}
  slots: {by: api_key, concurrency: 1}
  tenants: {by: "header:X-Tenant", rate: 10/minute}
plans:
  free: {limits: {api: 3/minute, slots: 1}}
  big: {limits: {api: unlimited, slots: 1}}
keys:
  - {key: k1, id: one, plan: free}
  - {key: k9, id: nine, plan: big}
categories:
  - {name: login, match: POST /login, charge: [logins], require_key: false}
  - {name: api, match: /api/**, charge: [api, slots]}
  - {name: tenant, match: /t/**, charge: [tenants], require_key: false}
  - {name: health, match: /health, exempt: true}
lockouts:
  login: {categories: [login], failure_status: [401], by: ip, threshold: 2, window: 1 minute,
          block: 1 minute}
"""

MINUTE = Rate(2, 60 * NS_PER_SECOND)
OVERRIDE = (MINUTE, "d|k=v")
ONE = Caller(api_key="k1")


def limiter(**options: Any) -> Limiter:
    policy = policy_from_text(textwrap.dedent(POLICY), name="t")
    return Limiter(policy, MemoryStore(clock=Clock(T0)), **options)


def test_an_item_without_a_category_reports_the_first_item_naming_one() -> None:
    rated = limiter()

    alone = rated.check_items([(None, Caller(client_ip="192.0.2.1"))], overrides=[OVERRIDE])
    first_named = rated.check_items(
        [(None, Caller()), ("health", Caller())], overrides=[OVERRIDE, None]
    )
    charged = rated.check_items([(None, Caller()), ("api", ONE)], overrides=[OVERRIDE, None])

    # none named: the policy's first category, no plan, no key; the caller's address kept
    assert (alone.category, alone.plan, alone.key_id, alone.client_ip) == (
        "login", None, None, "192.0.2.1",
    )  # fmt: skip
    assert (alone.allowed, alone.limit, alone.remaining) == (True, 2, 1)
    # an exempt item named first: its category, nothing of it charged
    assert (first_named.category, first_named.item_ends, first_named.remaining) == (
        "health", (1, 1), 0,
    )  # fmt: skip
    # a charged categorised item: its category, plan and key, wherever it stands
    assert (charged.category, charged.plan, charged.key_id) == ("api", "free", "one")
    assert charged.item_ends == (1, 2)
    assert [s.name for s in charged.statuses] == ["override", "api"]
    assert not rated.check_items([(None, Caller())], overrides=[OVERRIDE]).allowed  # 2/minute
    refused = rated.check_items([(None, Caller())], overrides=[OVERRIDE])
    assert (refused.status_code, refused.category, refused.headers["Retry-After"]) == (
        429, "login", "60",
    )  # fmt: skip


def test_item_ends_line_up_with_every_kind_of_item() -> None:
    decision = limiter().check_items(
        [("api", ONE), (None, Caller()), ("health", Caller()), ("api", ONE)],
        overrides=[None, OVERRIDE, (MINUTE, "health"), (Rate(9, NS_PER_SECOND), "x")],
    )
    assert decision.allowed
    assert decision.item_ends == (1, 2, 2, 3)
    assert [(s.name, s.limit) for s in decision.statuses] == [
        ("api", 3), ("override", 2), ("override", 9),
    ]  # fmt: skip


def test_an_overridden_item_is_still_identified_capped_and_blocked() -> None:
    rated = limiter()

    unknown = rated.check_items([("api", Caller(api_key="nope"))], overrides=[OVERRIDE])
    assert unknown.status_code == 401
    held = rated.check_items([("api", ONE)], overrides=[OVERRIDE], lease=True)
    over = rated.check_items([("api", ONE)], overrides=[OVERRIDE], lease=True)
    assert (held.allowed, held.plan, held.key_id, held.remaining) == (True, "free", "one", 1)
    assert (over.outcome, over.refused_by) == (OVER_CAP, "cap:slots")
    rated.release(held)

    login = ("login", Caller(client_ip="192.0.2.7"))
    for _ in range(2):
        failed = rated.check_items([login], overrides=[(MINUTE, "login")])
        assert failed.allowed
        rated.record_response(failed, 401)
    blocked = rated.check_items([login], overrides=[(MINUTE, "login")])
    assert (blocked.outcome, blocked.refused_by) == (BLOCKED, "lockout:login")


def test_an_overridden_item_charges_even_a_plan_unlimited_in_its_category() -> None:
    rated = limiter()
    nine = Caller(api_key="k9")
    assert [rated.check_items([("api", nine)]).statuses for _ in range(3)] == [(), (), ()]

    hits = [rated.check_items([("api", nine)], overrides=[OVERRIDE]).allowed for _ in range(3)]

    assert hits == [True, True, False]


def test_a_rate_key_missing_from_the_item_is_no_400_when_its_rates_are_overridden() -> None:
    rated = limiter()
    assert rated.check_items([("tenant", Caller())]).status_code == 400  # no X-Tenant

    overridden = rated.check_items([("tenant", Caller())], overrides=[OVERRIDE])

    assert (overridden.allowed, overridden.category) == (True, "tenant")


def test_an_exempt_category_or_network_stays_exempt_with_an_override() -> None:
    text = POLICY + "identity: {networks: [{cidr: 198.51.100.0/24, exempt: true}]}\n"
    rated = Limiter(policy_from_text(text, name="t"), MemoryStore(clock=Clock(T0)))
    office = Caller(client_ip="198.51.100.4", api_key="k1")

    for item in (("health", Caller()), ("api", office)):
        decision = rated.check_items([item], overrides=[OVERRIDE])
        assert (decision.outcome, decision.statuses) == (EXEMPT, ())


def test_the_spec_of_a_rate_is_built_once_and_kept() -> None:
    rated = limiter()
    decide = rated.check_items

    first = decide([(None, Caller())], overrides=[(Rate(5, 60 * NS_PER_SECOND), "a")])
    again = decide([(None, Caller())], overrides=[(Rate(5, 60 * NS_PER_SECOND), "b")])
    other = decide([(None, Caller())], overrides=[(Rate(6, 60 * NS_PER_SECOND), "a")])

    assert first.charges[0][0] is again.charges[0][0]
    assert other.charges[0][0] is not first.charges[0][0]
    assert first.charges[0][0].algorithm.name == "fixed_window"


def test_overrides_are_checked_before_anything_is_decided() -> None:
    rated = limiter()
    with pytest.raises(ValueError, match="needs an override"):
        rated.check_items([(None, Caller())])
    with pytest.raises(ValueError, match="needs an override"):
        rated.check_items([(None, Caller()), ("api", ONE)], overrides=[None, OVERRIDE])
    with pytest.raises(ValueError, match="1 overrides for 2 items"):
        rated.check_items([("api", ONE), ("api", ONE)], overrides=[OVERRIDE])
    with pytest.raises(TypeError, match="must be a Rate"):
        rated.check_items([("api", ONE)], overrides=[("2/minute", "c")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be text"):
        rated.check_items([("api", ONE)], overrides=[(MINUTE, b"c")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown category 'nope'"):
        rated.check_items([(None, Caller()), ("nope", ONE)], overrides=[OVERRIDE, None])
    assert rated.check_items([("api", ONE)]).remaining == 2  # nothing was taken


def test_the_hooks_and_the_async_limiter_see_overrides_too() -> None:
    events: list[DecisionEvent] = []
    policy = policy_from_text(textwrap.dedent(POLICY), name="t")
    twin = AsyncLimiter(policy, MemoryStore(clock=Clock(T0)), hooks=[events.append])

    async def hits() -> list[bool]:
        return [
            (await twin.check_items([(None, Caller())], overrides=[OVERRIDE])).allowed
            for _ in range(3)
        ]

    assert asyncio.run(hits()) == [True, True, False]
    assert [(event.allowed, event.category) for event in events] == [
        (True, "login"), (True, "login"), (False, "login"),
    ]  # fmt: skip
    rated = limiter(hooks=[events.append])
    assert rated.check_items([(None, Caller())], overrides=[OVERRIDE]).allowed
    assert len(events) == 4


def test_a_remembered_refusal_of_an_override_is_answered_as_the_store_would() -> None:
    rated = limiter(remember_refusals=True)
    for _ in range(2):
        assert rated.check_items([(None, Caller())], overrides=[OVERRIDE]).allowed

    refusals = [rated.check_items([(None, Caller())], overrides=[OVERRIDE]) for _ in range(2)]

    assert [(d.allowed, d.item_ends, d.retry_after) for d in refusals] == [(False, (1,), 60.0)] * 2
    assert rated.check_items([(None, Caller())], overrides=[(MINUTE, "other")]).allowed

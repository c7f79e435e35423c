"""Every decision told to the limiter's hooks as a small frozen event, lanes included."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore
from ratekeeper.engine import DecisionEvent
from ratekeeper.identity import Caller
from ratekeeper.policy import policy_from_text
from support.clock import Clock

T0 = 1_700_000_040.0
POLICY = policy_from_text(
    textwrap.dedent("""\
    version: 1
    name: t
    limits:
      api: {by: api_key, rate: 2/minute, algorithm: fixed_window}
      open: {by: ip, rate: 1/minute, algorithm: fixed_window}
    plans:
      free: {limits: {api: 2/minute}}
    keys:
      - {key: k1, id: key-1, plan: free}
    categories:
      - {name: health, match: /healthz, exempt: true}
      - {name: public, match: /public, charge: open}
      - {name: api, match: /api/**, charge: api}
    """),
    name="t",
)


def test_each_decision_is_told_once_with_its_outcome_and_who_without_the_address() -> None:
    events: list[DecisionEvent] = []
    limiter = Limiter(POLICY, MemoryStore(clock=Clock(T0)), hooks=[events.append])
    for _ in range(3):
        limiter.check(path="/api/x", headers={"X-API-Key": "k1"}, client_ip="203.0.113.9")
    limiter.check(path="/api/x", headers={"X-API-Key": "nope"}, client_ip="203.0.113.9")
    limiter.check_items([("api", Caller(api_key="k1"))], cost=2)

    summary = [(e.outcome, e.status, e.category, e.plan, e.key_id, e.cost) for e in events]
    assert summary == [
        ("admitted", 200, "api", "free", "key-1", 1),
        ("admitted", 200, "api", "free", "key-1", 1),
        ("limited", 429, "api", "free", "key-1", 1),
        ("unauthorized", 401, "api", None, None, 1),
        ("limited", 429, "api", "free", "key-1", 2),
    ]
    assert all(e.time_ns == int(T0 * 1e9) and e.seconds >= 0 for e in events)
    assert "203.0.113.9" not in repr(events)
    with pytest.raises(AttributeError):  # immutable
        events[0].outcome = "x"  # type: ignore[misc]


def test_lanes_tell_their_decisions_too() -> None:
    events: list[DecisionEvent] = []
    limiter = Limiter(POLICY, MemoryStore(clock=Clock(T0)), hooks=[events.append])
    lane = limiter.lane("GET", "/public")
    assert lane is not None
    lane.admit("198.51.100.1")
    lane.admit("198.51.100.1")
    assert [(e.outcome, e.allowed, e.status, e.category, e.key_id) for e in events] == [
        ("admitted", True, 200, "public", None),
        ("limited", False, 429, "public", None),
    ]


def test_async_limiter_tells_and_a_failing_hook_never_refuses_a_request() -> None:
    events: list[DecisionEvent] = []

    def broken(event: DecisionEvent) -> None:
        raise RuntimeError("metrics down")

    limiter = AsyncLimiter(POLICY, MemoryStore(clock=Clock(T0)), hooks=[broken, events.append])
    decision = asyncio.run(limiter.check(path="/healthz"))
    assert decision.allowed
    assert [(e.outcome, e.category) for e in events] == [("exempt", "health")]


def test_a_limiter_without_hooks_is_not_wrapped() -> None:
    limiter = Limiter(POLICY, MemoryStore(clock=Clock(T0)))
    assert "check" not in vars(limiter)
    assert limiter.hook is None
    lane = limiter.lane("GET", "/public")
    assert type(lane).__name__ == "Lane"

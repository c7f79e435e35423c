"""A PolicyDecision is plain data: what was decided, when, and by which limit.

Its answer (header fields, body, content type) is written from that data and
the policy's answer settings, whenever it is read and wherever the decision
travels: never from a clock read later, never by calling back a limiter.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore, PolicyDecision
from ratekeeper.engine import (
    ADMITTED,
    BAD_REQUEST,
    BLOCKED,
    EXEMPT,
    LIMITED,
    OVER_CAP,
    UNAUTHORIZED,
    UNAVAILABLE,
    LimiterCore,
)
from ratekeeper.engine import Limiter as EngineLimiter
from ratekeeper.http.answers import PolicyAnswers
from ratekeeper.policy import policy_from_text
from ratekeeper.stores.base import Store, StoreUnavailableError
from support.clock import Clock

START = 1_700_000_040.0

POLICY = """\
version: 1
identity: {node_header: X-Node}
limits:
  api: {by: ip, rate: "2/second;5/minute", algorithm: fixed_window}
  nodes: {by: node, rate: 5/minute}
  cap: {by: ip, concurrency: 1}
plans: {free: {limits: {nodes: 5/minute}}}
keys: [{key: k1, id: one, plan: free}]
categories:
  - {name: health, match: GET /health, exempt: true}
  - {name: agents, match: /agents/**, charge: [nodes]}
  - {name: capped, match: /capped/**, charge: [api, cap], require_key: false}
  - {name: api, match: /**, charge: [api]}
lockouts:
  login: {categories: [api], failure_status: [401], by: ip, threshold: 1, window: 1 minute,
          block: 1 minute}
headers: {style: both}
"""


def make(clock: Clock, store: Store | None = None) -> Limiter:
    policy = policy_from_text(textwrap.dedent(POLICY), name="t")
    return Limiter(policy, store or MemoryStore(clock=clock))


def test_headers_read_later_are_the_headers_of_when_it_was_decided() -> None:
    clock = Clock(START + 10.25)
    limiter = make(clock)
    decision = limiter.check(path="/x", client_ip="192.0.2.1")
    fresh = dict(limiter.check(path="/x", client_ip="192.0.2.9").headers)

    clock.t += 30  # the headers are read half a minute later, or sent by another process
    assert decision.decided_at_ns == round((START + 10.25) * 1e9)
    assert decision.headers["RateLimit"] == '"api-1s";r=1;t=1, "api-1m";r=4;t=50'
    assert decision.headers == fresh
    assert limiter.raw_headers(decision) == [
        (name.lower().encode(), value.encode()) for name, value in fresh.items()
    ]


def test_a_decision_holds_no_limiter_and_no_store() -> None:
    clock = Clock(START)
    limiter = make(clock)
    decisions = [limiter.check(path="/x", client_ip="192.0.2.1") for _ in range(3)]

    for decision in decisions:
        values = [getattr(decision, name) for name in _slots(decision)]
        assert not [v for v in values if isinstance(v, LimiterCore | MemoryStore)]
        assert isinstance(decision._answers, PolicyAnswers)


def _slots(decision: PolicyDecision) -> list[str]:
    return [name for cls in type(decision).__mro__ for name in getattr(cls, "__slots__", ())]


def test_every_decision_says_what_it_came_to_and_what_refused_it() -> None:
    clock = Clock(START)
    limiter = make(clock)

    def check(path: str, **request: Any) -> PolicyDecision:
        return limiter.check(path=path, client_ip="192.0.2.1", **request)

    assert (check("/health").outcome, check("/health").exempt) == (EXEMPT, True)
    assert check("/agents/x").outcome == UNAUTHORIZED
    bad = check("/agents/x", headers={"X-API-Key": "k1"})
    assert (bad.outcome, bad.status_code, bad.detail) == (BAD_REQUEST, 400, "missing X-Node")
    held = check("/capped/a", lease=True)
    over = check("/capped/a", lease=True)
    assert (held.outcome, over.outcome, over.refused_by) == (ADMITTED, OVER_CAP, "cap:cap")
    assert over.headers["X-RateLimit-Limit"] == "1"
    limiter.release(held)
    check("/x")
    limited = check("/x")
    assert (limited.outcome, limited.refused_by) == (LIMITED, None)
    assert [status.allowed for status in limited.statuses] == [False, True]
    limiter.record_response(check("/y"), 401)  # the lockout's one failure blocks the client
    blocked = check("/x")
    assert (blocked.outcome, blocked.refused_by, blocked.status_code) == (
        BLOCKED,
        "lockout:login",
        429,
    )
    assert blocked.headers["Retry-After"] == "60"


class _Down(MemoryStore):
    """Every way a decision reaches the store fails, as a store failing closed does."""

    def apply(self, charges: Any, consume: bool = True) -> Any:
        raise StoreUnavailableError("down")

    def apply_one(self, spec: Any, key: str, cost: int) -> Any:
        raise StoreUnavailableError("down")

    def decide(self, step: Any) -> Any:
        raise StoreUnavailableError("down")


def test_a_store_that_cannot_decide_gives_an_unavailable_decision() -> None:
    clock = Clock(START)
    decision = make(clock, _Down(clock=clock)).check(path="/x", client_ip="192.0.2.1")

    assert (decision.outcome, decision.status_code, decision.headers) == (
        UNAVAILABLE,
        503,
        {"Retry-After": "1"},
    )
    assert decision.decided_at_ns == round(START * 1e9)
    assert json.loads(decision.body or b"")


def test_the_engine_s_limiters_are_given_their_answer_renderer() -> None:
    policy = policy_from_text(textwrap.dedent(POLICY), name="t")
    with pytest.raises(TypeError, match="answers"):
        EngineLimiter(policy)  # type: ignore[call-arg]
    limiter = EngineLimiter(policy, answers=PolicyAnswers)
    assert isinstance(limiter.answers, PolicyAnswers)
    assert AsyncLimiter(policy).answers.__class__ is PolicyAnswers

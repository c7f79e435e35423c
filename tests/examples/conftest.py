"""Shared ground for the example policies' tests: one example on a fake clock.

Every test drives a real policy file from ``examples/`` through the
policy-driven :class:`~ratekeeper.Limiter`; time moves by assignment, never by
sleeping. The documented numbers come from SEEDS.md (the four providers'
published limits and the conventions the examples follow).

Test modules get an :class:`ExampleApi` from the ``example`` fixture. They
name these classes in annotations only (under ``TYPE_CHECKING``): importing
``conftest`` at run time picks whichever conftest pytest loaded last.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from ratekeeper import Block, Limiter, MemoryStore, Policy, PolicyDecision, load_policy
from support.clock import Clock

EXAMPLES = Path(__file__).parents[2] / "examples"

#: the default client address of a request (TEST-NET-3)
CLIENT_IP = "203.0.113.7"


@functools.cache
def example_policy(name: str) -> Policy:
    """The validated policy of ``examples/<name>.yaml`` (immutable, so loaded once)."""
    return load_policy(EXAMPLES / f"{name}.yaml")


class ExampleApi:
    """One example policy behind a :class:`Limiter` with a fresh memory store."""

    def __init__(self, name: str, start: float) -> None:
        self.name = name
        self.clock = Clock(start)
        self.limiter = Limiter(example_policy(name), store=MemoryStore(clock=self.clock))

    @property
    def now(self) -> float:
        return self.clock.t

    def at(self, t: float) -> None:
        """Move the clock to epoch second ``t`` (forward only)."""
        assert t >= self.clock.t, "time only moves forward"
        self.clock.t = t

    def advance(self, seconds: float) -> None:
        self.at(self.clock.t + seconds)

    def check(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip: str = CLIENT_IP,
        cost: int = 1,
    ) -> PolicyDecision:
        """Decide one request; ``key`` is sent as ``X-API-Key``."""
        sent = dict(headers or {})
        if key is not None:
            sent["X-API-Key"] = key
        return self.limiter.check(method=method, path=path, headers=sent, client_ip=ip, cost=cost)

    def repeat(
        self,
        times: int,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip: str = CLIENT_IP,
    ) -> list[PolicyDecision]:
        """The decisions of ``times`` identical requests sent at the same instant."""
        return [self.check(method, path, key=key, headers=headers, ip=ip) for _ in range(times)]

    def record(self, decision: PolicyDecision, status_code: int) -> list[Block]:
        """Feed the upstream's response status back (lockouts)."""
        return self.limiter.record_response(decision, status_code)

    @staticmethod
    def rate_headers(
        limit: int, remaining: int, reset: float, retry_after: int | None = None
    ) -> dict[str, str]:
        """The exact header fields SEEDS asks for: the trio, and ``Retry-After`` on a 429."""
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset)),
        }
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return headers

    def refusal_timing(self, decision: PolicyDecision) -> tuple[int, int]:
        """``(Retry-After, X-RateLimit-Reset)`` of a 429, checked against SEEDS's rules.

        ``Retry-After`` is whole seconds rounded up, never 0. ``X-RateLimit-Reset``
        is the instant the request could pass (``now + retry_after``) rounded up
        to a whole second: never later than ``now + Retry-After``, and equal to
        it when the clock reads a whole second.
        """
        now = self.now
        assert decision.status_code == 429
        retry_after = int(decision.headers["Retry-After"])
        reset = int(decision.headers["X-RateLimit-Reset"])
        assert retry_after >= 1
        assert retry_after - 1 < decision.retry_after <= retry_after
        assert decision.reset_at == pytest.approx(now + decision.retry_after, abs=1e-6)
        assert decision.reset_at <= reset < decision.reset_at + 1
        assert now < reset <= math.ceil(now + retry_after)
        if now == int(now):
            assert reset == now + retry_after
        return retry_after, reset


ExampleFactory = Callable[[str, float], ExampleApi]


@pytest.fixture
def example() -> ExampleFactory:
    """``example(name, start)``: a fresh :class:`ExampleApi` whose clock reads ``start``."""
    return ExampleApi

"""The policy-driven limiters users build: the engine's, answering in HTTP.

>>> limiter = Limiter(load_policy("examples/scanner.yaml"), store=MemoryStore())  # doctest: +SKIP
>>> d = limiter.check(method="POST", path="/api/scans",
...                   headers={"X-API-Key": "demo-free"}, client_ip="203.0.113.7")  # doctest: +SKIP
>>> d.allowed, d.plan, d.category, d.status_code, d.headers["X-RateLimit-Limit"]  # doctest: +SKIP
(True, 'free', 'scans', 200, '20')

The engine (:mod:`ratekeeper.engine`) decides and imports no HTTP; a decision
carries the renderer of its policy's answers. This module is where the two
meet: :class:`Limiter` and :class:`AsyncLimiter` are the engine's limiters
given :class:`~ratekeeper.http.answers.PolicyAnswers`, so that
``decision.headers``, ``decision.body`` and ``decision.content_type`` are the
policy's HTTP answer (docs/architecture.md, "Answers").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .engine import AsyncLimiter as _AsyncLimiter
from .engine import BlockHook, DecisionHook, PolicyDecision
from .engine import Limiter as _Limiter
from .http.answers import PolicyAnswers, RawHeaders
from .policy import Policy
from .stores.base import Store

__all__ = ["AsyncLimiter", "Limiter", "PolicyDecision"]


class Limiter(_Limiter):
    """Decide HTTP requests against a policy, synchronously.

    ``policy`` is a loaded :class:`~ratekeeper.policy.Policy` or a path to a
    policy file; ``store`` defaults to a new :class:`MemoryStore`; each of
    ``hooks`` is told of every decision (:class:`~ratekeeper.engine.DecisionEvent`), each of
    ``block_hooks`` of every block a response starts (:class:`~ratekeeper.engine.BlockEvent`).
    """

    answers: PolicyAnswers

    def __init__(
        self,
        policy: Policy | str | Path,
        store: Store | None = None,
        *,
        remember_refusals: bool = False,
        hooks: Sequence[DecisionHook] = (),
        block_hooks: Sequence[BlockHook] = (),
    ) -> None:
        super().__init__(
            policy, store, remember_refusals=remember_refusals, answers=PolicyAnswers,
            hooks=hooks, block_hooks=block_hooks,
        )  # fmt: skip

    def raw_headers(self, decision: PolicyDecision) -> RawHeaders:
        """``decision.headers`` as lower-case latin-1 byte pairs, as ASGI sends them."""
        return self.answers.raw_headers(decision)


class AsyncLimiter(_AsyncLimiter):
    """The asyncio twin of :class:`Limiter`."""

    answers: PolicyAnswers

    def __init__(
        self,
        policy: Policy | str | Path,
        store: Store | None = None,
        *,
        remember_refusals: bool = False,
        hooks: Sequence[DecisionHook] = (),
        block_hooks: Sequence[BlockHook] = (),
    ) -> None:
        super().__init__(
            policy, store, remember_refusals=remember_refusals, answers=PolicyAnswers,
            hooks=hooks, block_hooks=block_hooks,
        )  # fmt: skip

    def raw_headers(self, decision: PolicyDecision) -> RawHeaders:
        """``decision.headers`` as lower-case latin-1 byte pairs, as ASGI sends them."""
        return self.answers.raw_headers(decision)

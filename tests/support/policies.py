"""A small policy and a full reading of a decision, shared by the shortcut tests.

The tests of the request path's shortcuts (``test_fast_paths``,
``test_lanes``) run the same requests the short way and the long way and
compare everything a caller or a client can read.
"""

from __future__ import annotations

import textwrap
from typing import Any

from ratekeeper import AsyncLimiter, Limiter, PolicyDecision
from ratekeeper.policy import policy_from_text

#: one limit by client IP on /api/**, a GET health check exempt
IP_ONLY = """\
version: 1
limits:
  api: {by: ip, rate: 3/minute}
categories:
  - {name: health, match: GET /api/health, exempt: true}
  - {name: api, match: /api/**, charge: [api]}
"""


def policy(text: str) -> Any:
    """A policy from indented YAML text, named ``t`` (counter keys start ``t:``)."""
    return policy_from_text(textwrap.dedent(text), name="t")


def answer(limiter: Limiter | AsyncLimiter, decision: PolicyDecision) -> tuple[Any, ...]:
    """Everything a caller can read from a decision, the wire headers included."""
    return (
        decision.allowed, decision.status_code, decision.limit, decision.remaining,
        decision.reset_at, decision.retry_after, decision.category, decision.plan,
        decision.key_id, decision.client_ip, decision.method, decision.path,
        decision.statuses, decision.headers, decision.body, decision.content_type,
        limiter.raw_headers(decision),
    )  # fmt: skip

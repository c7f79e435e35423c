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


#: a cap, a lockout, two rates and a penalty, all by client IP (one Cluster slot per
#: decision): what one decision can ask of a store at most
EVERYTHING = """\
version: 1
name: everything
identity: {trusted_proxies: [127.0.0.1/32]}
anonymous_plan: anonymous
limits:
  api: {by: ip, rate: "3/minute;100/hour"}
  slots: {by: ip, concurrency: 2}
plans:
  anonymous: {limits: {api: "3/minute;100/hour", slots: 2}}
categories:
  - {name: login, match: POST /login, charge: [api, slots]}
lockouts:
  login: {categories: [login], by: ip, threshold: 2, window: 1 hour, block: 1 hour,
          failure_status: [401]}
penalty: {by: ip, rejections: 2, window: 1 hour, block: 1 hour}
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

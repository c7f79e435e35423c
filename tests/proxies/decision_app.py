"""The decision service's stand-in, until ``ratekeeper serve`` is on this branch.

``uvicorn --factory decision_app:decision_app`` (``proxy_apps.decision_service``
starts it): the ``GET /v1/authorize`` route over an
:class:`~ratekeeper.AsyncLimiter` of the policy file named by
``$RATEKEEPER_TEST_POLICY``, on a memory store and the real clock. A module of
its own: the service's process imports nothing of the tests.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from starlette.applications import Starlette

from ratekeeper import AsyncLimiter, MemoryStore, load_policy
from ratekeeper.server.authorize import authorize_route

__all__ = ["POLICY_ENV", "decision_app"]

#: the policy file the service decides with (its process's environment)
POLICY_ENV = "RATEKEEPER_TEST_POLICY"


def decision_app() -> Starlette:
    """``GET /v1/authorize`` over the policy in ``$RATEKEEPER_TEST_POLICY``."""
    policy = load_policy(os.environ[POLICY_ENV])
    service = SimpleNamespace(policy=policy, limiter=AsyncLimiter(policy, MemoryStore()))
    return Starlette(routes=[authorize_route(service)])

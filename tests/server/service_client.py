"""The decision service in a test: a real app on a fake clock, called through httpx.

:class:`ServiceClient` holds a :class:`~ratekeeper.server.service.Service`
on a memory store whose clock the test sets, its Starlette app, and an
``httpx.AsyncClient`` on ``httpx.ASGITransport``: every call is real HTTP
through the app, nothing of it is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ratekeeper import MemoryStore, Policy, load_policy
from ratekeeper.policy import policy_from_text
from ratekeeper.server.app import build_app
from ratekeeper.server.service import Service
from ratekeeper.stores import Store
from support.clock import Clock

EXAMPLES = Path(__file__).parents[2] / "examples"
T0 = 1_700_000_040.0  # a minute boundary
IP = "203.0.113.7"

#: a cap of one request in flight per client address, 100 a minute
CAPPED = """
version: 1
name: capped
anonymous_plan: anonymous
limits:
  api: {by: ip}
  slots: {by: ip, concurrency: 1, lease_ttl: 1 minute}
plans:
  anonymous: {limits: {api: 100/minute, slots: 1}}
categories:
  - name: api
    match: /**
    charge: [api, slots]
"""


def example(name: str) -> Policy:
    return load_policy(EXAMPLES / f"{name}.yaml")


def scan(key: str = "demo-free", **extra: Any) -> dict[str, Any]:
    """scanner's ``POST /api/scans`` with ``key``: free plan, 60/minute and 20/hour."""
    return {
        "method": "POST",
        "path": "/api/scans",
        "headers": {"X-API-Key": key},
        "client_ip": IP,
        **extra,
    }


class ServiceClient:
    """One service and an HTTP client of its app; ``clock.t`` is the store's time."""

    def __init__(
        self,
        policy: Policy | str | None,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        secret: bytes | None = None,
        registry: Any = None,
        policy_path: Path | None = None,
        admin_token: str | None = None,
        check_token: str | None = None,
        metrics_token: str | None = None,
    ) -> None:
        self.clock = clock or Clock(T0)
        self.store = store if store is not None else MemoryStore(clock=self.clock)
        loaded = policy_from_text(policy) if isinstance(policy, str) else policy
        self.service = Service(
            store=self.store,
            policy=loaded,
            policy_path=policy_path,
            secret=secret,
            registry=registry,
        )
        self.app = build_app(
            self.service,
            admin_token=admin_token,
            check_token=check_token,
            metrics_token=metrics_token,
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://ratekeeper"
        )

    async def post(self, path: str, body: Any = None, **options: Any) -> httpx.Response:
        if body is not None:
            options["json"] = body
        return await self.http.post(path, **options)

    async def check(self, call: dict[str, Any]) -> httpx.Response:
        return await self.post("/v1/check", call)

    async def close(self) -> None:
        await self.http.aclose()
        await self.service.close()


#: ``make_service(policy, **options)``: the fixture of tests/server/conftest.py
MakeService = Callable[..., ServiceClient]

"""A decision service with usage analytics on, for the tests: real app, registry, fake clock.

:class:`UsageService` holds a :class:`~ratekeeper.server.service.Service` on a
memory store whose clock the test sets and a real :class:`Registry` (SQLite in
the test's directory, or the URL given), its app built by ``build_app`` with an
admin token, and an ``httpx.AsyncClient`` on ``httpx.ASGITransport``. The
recorder's thread is not started: a test flushes (``flush()``) when it wants
the counts written, so what it reads back is exact.
"""

from __future__ import annotations

import textwrap
from typing import Any

import httpx

from ratekeeper import MemoryStore
from ratekeeper.policy import policy_from_text
from ratekeeper.registry import Registry
from ratekeeper.server.analytics import UsageRecorder
from ratekeeper.server.app import build_app
from ratekeeper.server.service import Service
from ratekeeper.stores import Store
from support.clock import Clock

TOKEN = "an-admin-token-of-the-analytics-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: a minute boundary, 14 minutes into its hour
T0 = 1_700_000_040.0
IP = "203.0.113.7"

POLICY = textwrap.dedent("""\
    version: 1
    name: usage
    anonymous_plan: anonymous
    limits:
      api: {by: api_key, algorithm: fixed_window}
      logins: {by: ip, rate: 100/minute}
    plans:
      anonymous: {limits: {api: 3/minute}}
      free: {limits: {api: 5/minute}}
    keys:
      - {key: demo-free, id: demo-free, plan: free}
    categories:
      - {name: login, match: POST /login, charge: [logins]}
      - {name: api, match: /api/**, charge: [api]}
    lockouts:
      login:
        categories: [login]
        failure_status: [401]
        by: ip
        threshold: 2
        window: 15 minutes
        block: 15 minutes
    """)


def call(key: str | None = None, path: str = "/api/things", **extra: Any) -> dict[str, Any]:
    """A ``/v1/check`` call for ``path`` from :data:`IP`, with API key ``key``."""
    headers = {"X-API-Key": key} if key else {}
    return {"method": "GET", "path": path, "headers": headers, "client_ip": IP, **extra}


class UsageService:
    """One service with analytics on, its admin API, and an HTTP client of its app."""

    def __init__(
        self, registry_url: str, *, store: Store | None = None, clock: Clock | None = None
    ) -> None:
        self.clock = clock or Clock(T0)
        self.store = store if store is not None else MemoryStore(clock=self.clock)
        self.registry = Registry.open(registry_url)
        self.service = Service(
            store=self.store, policy=policy_from_text(POLICY, name="usage"), registry=self.registry
        )
        self.app = build_app(self.service, admin_token=TOKEN)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://ratekeeper"
        )

    @property
    def recorder(self) -> UsageRecorder:
        recorder = self.service.recorder
        assert recorder is not None
        return recorder

    async def check(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/v1/check", json=body)

    async def admin(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(f"/admin{path}", params=params, headers=AUTH)

    def flush(self) -> None:
        assert self.recorder.flush()

    async def close(self) -> None:
        await self.http.aclose()
        await self.service.close()

"""A dashboard to call: a real service (memory store on a fake clock, SQLite registry), a client.

The dashboard app is built here as the service's app routes it
(``/dashboard{rest:path}``), with a stand-in for the usage analytics
(:class:`FixedAnalytics`: fixed numbers, and the questions it was asked), so a
page's numbers can be checked exactly while the service, its limiter, store
and registry are the real ones. Pages are called over ``httpx.ASGITransport``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from ratekeeper import MemoryStore
from ratekeeper.policy import load_policy
from ratekeeper.registry import Registry
from ratekeeper.server.dashboard import DashboardApp
from ratekeeper.server.service import Service
from support.clock import Clock

TOKEN = "s3cret-admin-token-of-the-dashboard"
BASE = "http://dash.test"
#: 2026-01-01 00:00:00 UTC: aligned to the minute, the hour and the day
T0 = 1_767_225_600.0

POLICY = textwrap.dedent("""\
    version: 1
    name: shop
    anonymous_plan: anonymous
    limits:
      api: {by: api_key, algorithm: fixed_window}
      slots: {by: api_key, concurrency: 2}
      logins: {by: ip, rate: 100/minute}
    plans:
      anonymous: {limits: {api: 2/minute}}
      free: {limits: {api: 5/minute}}
      pro: {limits: {api: 10/minute, slots: 4}}
    keys:
      - {key: demo-free, id: demo-free, plan: free}
    categories:
      - {name: login, match: POST /login, charge: [logins]}
      - {name: api, match: /api/**, charge: [api, slots]}
    lockouts:
      login:
        categories: [login]
        failure_status: [401]
        by: ip
        threshold: 2
        window: 15 minutes
        block: 15 minutes
    """)


@dataclass(frozen=True)
class Point:
    """A period of usage, as ``ratekeeper.registry.UsagePoint`` has it."""

    at: datetime
    allowed: int = 0
    refused_rate: int = 0
    refused_cap: int = 0
    refused_block: int = 0
    refused_unknown_key: int = 0
    refused_other: int = 0
    cost: int = 0

    @property
    def refused(self) -> int:
        return (
            self.refused_rate + self.refused_cap + self.refused_block
            + self.refused_unknown_key + self.refused_other
        )  # fmt: skip

    @property
    def requests(self) -> int:
        return self.allowed + self.refused


@dataclass
class FixedAnalytics:
    """Usage analytics with fixed numbers; ``asked`` keeps each question (name, arguments)."""

    seconds: list[tuple[int, int, int]] = field(default_factory=list)
    series: dict[str, list[Point]] = field(default_factory=dict)
    top: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def recent(self, seconds: int) -> list[tuple[int, int, int]] | None:
        self.asked.append(("recent", {"seconds": seconds}))
        return list(self.seconds)

    def usage_series(
        self, *, key: str, start: datetime, end: datetime, step: str
    ) -> Sequence[Point] | None:
        self.asked.append(("usage_series", {"key": key, "start": start, "end": end, "step": step}))
        return self.series.get(step, [])

    def top_keys(self, *, by: str, since: datetime, limit: int) -> list[tuple[str, int]] | None:
        self.asked.append(("top_keys", {"by": by, "since": since, "limit": limit}))
        return self.top.get(by, [])


class NoAnalytics:
    """A service that counts nothing (no registry): every answer ``None``."""

    def recent(self, seconds: int) -> None:
        return None

    def usage_series(self, *, key: str, start: datetime, end: datetime, step: str) -> None:
        return None

    def top_keys(self, *, by: str, since: datetime, limit: int) -> None:
        return None


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield registry
    registry.close()


@pytest.fixture
async def service(tmp_path: Path, registry: Registry, clock: Clock) -> AsyncIterator[Service]:
    path = tmp_path / "shop.yaml"
    path.write_text(POLICY, "utf-8")
    service = Service(
        store=MemoryStore(clock=clock),
        policy=load_policy(path),
        policy_path=path,
        registry=registry,
        admin_token=TOKEN,
    )
    yield service
    await service.close()


@pytest.fixture
def analytics() -> FixedAnalytics:
    return FixedAnalytics()


def dashboard_app(service: Any, analytics: Any, clock: Clock) -> Starlette:
    app = DashboardApp(service, analytics=analytics, clock=clock)
    return Starlette(routes=[Route("/dashboard{rest:path}", app)])


@pytest.fixture
async def client(
    service: Service, analytics: FixedAnalytics, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=dashboard_app(service, analytics, clock))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def log_in(client: httpx.AsyncClient) -> str:
    """Log ``client`` in with the token; returns the session's CSRF token (from a page)."""
    response = await client.post("/dashboard/login", data={"token": TOKEN})
    assert response.status_code == 303, response.text
    page = await client.get("/dashboard/keys")
    assert page.status_code == 200
    return csrf_of(page.text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, page
    return found[1]


def is_login_form(page: str) -> bool:
    return '<input id="token" name="token" type="password"' in page and "<h1>ratekeeper" in page


async def check(service: Service, key: str | None = None, *, path: str = "/api/things",
                method: str = "GET", ip: str = "203.0.113.7") -> int:  # fmt: skip
    """One request decided by the service's real limiter; its status."""
    headers = {"X-API-Key": key} if key is not None else {}
    decision = await service.limiter.check(method=method, path=path, headers=headers, client_ip=ip)
    return decision.status_code


#: the address two failed logins block (the policy's lockout: 2 failures in 15 minutes)
BLOCKED_IP = "198.51.100.9"


async def block_a_client(service: Service) -> str:
    """Two failed logins from one address: the lockout blocks it. Returns its block's key."""
    for _ in range(2):
        decision = await service.limiter.check(
            method="POST", path="/login", headers={}, client_ip=BLOCKED_IP
        )
        assert decision.allowed
        await service.limiter.record_response(decision, 401)
    (block,) = service.store.lockouts.blocks()
    assert BLOCKED_IP in block.key
    return block.key

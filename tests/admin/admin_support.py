"""An admin API to call: a tiny service (real limiter, memory store, SQLite registry), a client.

The routes are called through ``httpx.ASGITransport`` on a Starlette app built
here, mounted under ``/admin`` as the service mounts them. The service is the
smallest object satisfying ``AdminService``: a real ``AsyncLimiter`` on a
``MemoryStore`` with a fake clock, a real ``Registry`` on SQLite in the
test's directory, a ``reload_policy`` that reads its file again.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ratekeeper import AsyncLimiter, MemoryStore
from ratekeeper.policy import Policy, PolicyError, load_policy
from ratekeeper.registry import Registry
from ratekeeper.server.admin import admin_routes
from support.clock import Clock

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: aligned to the minute and the day
T0 = 1_728_000.0

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


class TinyService:
    """What the admin routes need of a service, and nothing else."""

    def __init__(self, policy_path: Path, registry: Registry | None, clock: Clock) -> None:
        self.policy_path = policy_path
        self.registry = registry
        self.store = MemoryStore(clock=clock)
        self.policy: Policy = load_policy(policy_path)
        self.limiter = self._limiter(self.policy)
        self.reloads: list[str] = []

    def _limiter(self, policy: Policy) -> AsyncLimiter:
        limiter = AsyncLimiter(policy, self.store)
        if self.registry is not None:
            limiter.use_keys(self.registry.entries(policy))
        return limiter

    async def reload_policy(self, *, actor: str, path: str | None = None) -> list[str]:
        self.reloads.append(actor)
        try:
            loaded = load_policy(path or self.policy_path)
        except PolicyError as error:
            return [str(error)]
        self.policy, self.limiter = loaded, self._limiter(loaded)
        if self.registry is not None:
            self.registry.record("policy.reload", actor=actor, target=loaded.name)
        return []


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(POLICY, "utf-8")
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield registry
    registry.close()


@pytest.fixture
def service(policy_path: Path, registry: Registry, clock: Clock) -> TinyService:
    return TinyService(policy_path, registry, clock)


def app_of(service: TinyService, token: str | None = TOKEN) -> Starlette:
    return Starlette(routes=[Mount("/admin", routes=admin_routes(service, token=token))])


@pytest.fixture
async def client(service: TinyService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_of(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
        yield client

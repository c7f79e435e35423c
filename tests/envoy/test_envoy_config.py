"""``--envoy-config``: the reference service's YAML (envoyproxy/ratelimit) served as it documents.

Each table is one of the reference README's examples, checked through a real
grpc.aio server with the servicer: which descriptors are limited, at what
rate, and the call that goes over.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.service.ratelimit.v3 import rls_pb2
from rls_support import Rls, RlsFactory, descriptor

from ratekeeper.policy.envoy_config import (
    EnvoyConfigError,
    envoy_config_policy,
    load_envoy_config,
)

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
Unit = rls_pb2.RateLimitResponse.RateLimit

MONGO = """
domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit: {unit: second, requests_per_unit: 500}
  - key: database
    value: default
    rate_limit: {unit: second, requests_per_unit: 500}
"""
MESSAGING = """
domain: messaging
descriptors:
  # Only allow 5 marketing messages a day
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit: {unit: day, requests_per_unit: 5}
  # Only allow 100 messages a day to any unique phone number
  - key: to_number
    rate_limit: {unit: day, requests_per_unit: 100}
"""
PER_IP = """
domain: edge_proxy_per_ip
descriptors:
  - key: remote_address
    rate_limit: {unit: second, requests_per_unit: 10}
"""
BLACK_LIST = (
    PER_IP
    + """
  # Black list IP
  - key: remote_address
    value: 50.0.0.5
    rate_limit: {unit: second, requests_per_unit: 0}
"""
)
NESTED = """
domain: example4
descriptors:
  - key: key
    value: value
    rate_limit: {unit: second, requests_per_unit: 5}
    descriptors:
      - key: subkey
        value: subvalue
        rate_limit: {unit: second, requests_per_unit: 300}
"""
SHADOW = """
domain: example5
descriptors:
  - key: remote_address
    rate_limit: {unit: second, requests_per_unit: 2}
    shadow_mode: true
"""
INTERNAL = """
domain: internal
descriptors:
  - key: ldap
    rate_limit: {unlimited: true}
  - key: azure
    rate_limit: {unit: minute, requests_per_unit: 100}
  - key: tenant
    rate_limits:
      - {unit: second, requests_per_unit: 2}
      - {unit: hour, requests_per_unit: 3}
"""


async def served(rls_factory: RlsFactory, text: str, tmp_path: Path) -> Rls:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    rls: Rls = await rls_factory(load_envoy_config(path))
    return rls


def limit_of(status: Any) -> tuple[int, int] | None:
    if not status.HasField("current_limit"):
        return None
    return status.current_limit.requests_per_unit, status.current_limit.unit


# (config, domain, descriptor entries, the limit it gets: (requests_per_unit, unit) or None)
LIMITS = [
    (MONGO, "mongo_cps", [("database", "users")], (500, Unit.SECOND)),
    (MONGO, "mongo_cps", [("database", "default")], (500, Unit.SECOND)),
    (MONGO, "mongo_cps", [("database", "other")], None),
    (MONGO, "another_domain", [("database", "users")], None),
    (MESSAGING, "messaging", [("message_type", "marketing"), ("to_number", "2061234567")],
     (5, Unit.DAY)),
    (MESSAGING, "messaging", [("to_number", "2061234567")], (100, Unit.DAY)),
    (MESSAGING, "messaging", [("message_type", "marketing")], None),  # no limit of its own
    (MESSAGING, "messaging", [("message_type", "transactional"), ("to_number", "1")], None),
    (PER_IP, "edge_proxy_per_ip", [("remote_address", "10.0.0.1")], (10, Unit.SECOND)),
    (NESTED, "example4", [("key", "value")], (5, Unit.SECOND)),
    (NESTED, "example4", [("key", "value"), ("subkey", "subvalue")], (300, Unit.SECOND)),
    (NESTED, "example4", [("key", "value"), ("subkey", "other")], None),
    (NESTED, "example4", [("subkey", "subvalue")], None),
    (INTERNAL, "internal", [("ldap", "x")], None),
    (INTERNAL, "internal", [("azure", "x")], (100, Unit.MINUTE)),
]  # fmt: skip


@pytest.mark.parametrize(("config", "domain", "entries", "limit"), LIMITS)
async def test_the_reference_readme_examples_limit_what_it_documents(
    rls_factory: RlsFactory,
    tmp_path: Path,
    config: str,
    domain: str,
    entries: list[tuple[str, str]],
    limit: tuple[int, int] | None,
) -> None:
    rls = await served(rls_factory, config, tmp_path)
    answer = await rls.ask(domain, descriptor(*entries))
    assert answer.overall_code == OK
    assert limit_of(answer.statuses[0]) == limit


async def test_marketing_messages_go_over_at_the_sixth_per_number_and_day(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, MESSAGING, tmp_path)
    to = lambda number: descriptor(("message_type", "marketing"), ("to_number", number))  # noqa: E731
    codes = [(await rls.ask("messaging", to("1"))).overall_code for _ in range(6)]
    other = await rls.ask("messaging", to("2"))
    assert codes == [OK] * 5 + [OVER]
    assert other.overall_code == OK  # each number counted apart
    assert other.statuses[0].limit_remaining == 4


async def test_an_address_has_ten_a_second(rls_factory: RlsFactory, tmp_path: Path) -> None:
    rls = await served(rls_factory, PER_IP, tmp_path)
    codes = [
        (
            await rls.ask("edge_proxy_per_ip", descriptor(("remote_address", "10.0.0.1")))
        ).overall_code
        for _ in range(11)
    ]
    assert codes == [OK] * 10 + [OVER]


async def test_the_window_is_a_clock_aligned_fixed_window(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, PER_IP, tmp_path)
    ip = descriptor(("remote_address", "10.0.0.1"))
    rls.clock.t += 0.5
    for _ in range(10):
        await rls.ask("edge_proxy_per_ip", ip)
    over = await rls.ask("edge_proxy_per_ip", ip)
    rls.clock.t += 0.5  # the next whole second: a new window, all ten again
    again = await rls.ask("edge_proxy_per_ip", ip)
    assert over.overall_code == OVER
    assert over.statuses[0].duration_until_reset.ToTimedelta().total_seconds() <= 0.5
    assert again.overall_code == OK
    assert again.statuses[0].limit_remaining == 9


async def test_shadow_mode_reports_over_limit_on_the_descriptor_and_never_denies(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, SHADOW, tmp_path)
    answers = [
        await rls.ask("example5", descriptor(("remote_address", "10.0.0.1"))) for _ in range(3)
    ]
    assert [a.overall_code for a in answers] == [OK, OK, OK]
    assert answers[2].statuses[0].code == OVER


async def test_two_limits_on_one_descriptor_are_both_charged_and_the_tightest_reported(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, INTERNAL, tmp_path)
    tenant = descriptor(("tenant", "t1"))
    first = await rls.ask("internal", tenant)
    second = await rls.ask("internal", tenant)
    third = await rls.ask("internal", tenant)  # 2/second reached
    rls.clock.t += 1
    fourth = await rls.ask("internal", tenant)
    rls.clock.t += 1
    fifth = await rls.ask("internal", tenant)  # 3/hour reached
    assert [a.overall_code for a in (first, second, third, fourth, fifth)] == [
        OK, OK, OVER, OK, OVER,
    ]  # fmt: skip
    assert limit_of(first.statuses[0]) == (2, Unit.SECOND)
    assert limit_of(fifth.statuses[0]) == (3, Unit.HOUR)


def test_the_compiled_policy_is_a_policy_with_a_tree_and_fixed_windows() -> None:
    data = envoy_config_policy(yaml.safe_load(MESSAGING))
    assert data["defaults"] == {"algorithm": "fixed_window"}
    assert data["envoy"]["domain"] == "messaging"
    assert data["limits"]["envoy_1"] == {
        "by": ["header:message_type", "header:to_number"],
        "rate": "5/day",
        "shadow": False,
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("descriptors: []", "'domain'"),
        ("domain: d\ndescriptors: [{key: a, replaces: [{name: x}]}]", "replaces"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {unit: fortnight, requests_per_unit: 1}}]",
         "fortnight"),
        ("domain: d\ndescriptors: [{value: a}]", "needs a 'key'"),
        ("domain: d\nextra: 1", "extra"),
        (BLACK_LIST, "requests_per_unit 0"),  # the README's block list: not served yet
    ],
)  # fmt: skip
def test_a_config_ratekeeper_cannot_serve_is_refused_with_the_reason(
    config: str, message: str
) -> None:
    with pytest.raises(EnvoyConfigError, match=message):
        envoy_config_policy(yaml.safe_load(config))


def test_ratekeeper_serve_envoy_config_serves_the_reference_config(tmp_path: Path) -> None:
    import grpc
    from envoy.service.ratelimit.v3 import rls_pb2_grpc
    from rls_support import request

    from support.loopback import LoopbackProcess, free_port

    config = tmp_path / "config.yaml"
    config.write_text(MESSAGING)

    def command(port: int, directory: Path) -> list[str]:
        return [
            sys.executable, "-m", "ratekeeper", "serve", "--envoy-config", str(config),
            "--registry", "none", "--port", str(free_port()), "--grpc-port", str(port),
        ]  # fmt: skip

    with (
        LoopbackProcess("ratekeeper", command, tmp_path / "rk") as served,
        grpc.insecure_channel(served.address) as channel,
    ):
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        number = descriptor(("to_number", "2061234567"))
        answer = stub.ShouldRateLimit(request("messaging", number))
    assert answer.overall_code == OK
    assert limit_of(answer.statuses[0]) == (100, Unit.DAY)
    assert answer.statuses[0].limit_remaining == 99


def test_serve_refuses_a_policy_and_an_envoy_config_together(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ratekeeper.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(MESSAGING)
    result = CliRunner().invoke(
        main, ["serve", "--envoy-config", str(config), "--policy", str(config)]
    )
    assert result.exit_code != 0
    assert "not both" in result.output

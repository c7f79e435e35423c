"""ShouldRateLimit through a real gRPC server on loopback (a grpc.aio client), xds-protos stubs.

The flowtriq test policy (flowtriq_envoy.yaml) maps Envoy's descriptors to
its categories: ``generic_key`` names the agent endpoint, ``api_key`` and
``node`` entries say who calls; a descriptor with ``method`` and ``path``
entries is routed by the policy's own routes.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rls_support import T0, Rls, RlsFactory, descriptor

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
MINUTE = rls_pb2.RateLimitResponse.RateLimit.MINUTE
HOUR = rls_pb2.RateLimitResponse.RateLimit.HOUR
KEY = "demo-key"


def heartbeat(node: str = "n1", key: str = KEY, hits: int | None = None) -> object:
    return descriptor(("generic_key", "heartbeat"), ("api_key", key), ("node", node), hits=hits)


def metrics(node: str = "n1", hits: int | None = None) -> object:
    return descriptor(("generic_key", "metrics"), ("api_key", KEY), ("node", node), hits=hits)


def headers(response: rls_pb2.RateLimitResponse) -> dict[str, str]:
    return {header.key: header.value for header in response.response_headers_to_add}


async def test_the_sixth_heartbeat_of_a_node_in_a_minute_is_over_limit_with_its_answer(
    rls: Rls,
) -> None:
    rls.clock.t = T0 + 10
    answers = [await rls.ask("flowtriq", heartbeat()) for _ in range(6)]

    assert [a.overall_code for a in answers] == [OK] * 5 + [OVER]
    first, sixth = answers[0], answers[5]
    status = first.statuses[0]
    assert (status.code, status.current_limit.requests_per_unit, status.current_limit.unit) == (
        OK, 5, MINUTE,
    )  # fmt: skip
    assert (status.limit_remaining, status.duration_until_reset.seconds) == (4, 50)
    assert headers(first) == {
        "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": str(int(T0 + 60)),
    }  # fmt: skip
    refused = sixth.statuses[0]
    assert (refused.code, refused.limit_remaining, refused.duration_until_reset.seconds) == (
        OVER, 0, 50,
    )  # fmt: skip
    assert headers(sixth)["Retry-After"] == "50"
    assert headers(sixth)["X-RateLimit-Remaining"] == "0"
    assert json.loads(sixth.raw_body) == {
        "error": "rate_limit_exceeded",
        "message": "Rate limit exceeded for heartbeat. Retry after 50 seconds.",
        "limit": 5, "reset": int(T0 + 60), "retry_after": 50,
    }  # fmt: skip


async def test_each_node_has_its_own_heartbeat_quota_and_the_window_is_clock_aligned(
    rls: Rls,
) -> None:
    for _ in range(5):
        await rls.ask("flowtriq", heartbeat("n1"))
    assert (await rls.ask("flowtriq", heartbeat("n1"))).overall_code == OVER
    assert (await rls.ask("flowtriq", heartbeat("n2"))).overall_code == OK
    rls.clock.t = T0 + 60  # the next clock-aligned minute
    again = await rls.ask("flowtriq", heartbeat("n1"))
    assert (again.overall_code, again.statuses[0].limit_remaining) == (OK, 4)


async def test_descriptors_of_one_request_are_decided_all_or_nothing(rls: Rls) -> None:
    for _ in range(5):
        await rls.ask("flowtriq", heartbeat())

    both = await rls.ask("flowtriq", metrics(), heartbeat())

    assert both.overall_code == OVER
    assert [s.code for s in both.statuses] == [OK, OVER]
    assert both.statuses[0].limit_remaining == 120  # nothing was taken from it
    alone = await rls.ask("flowtriq", metrics())
    assert alone.statuses[0].limit_remaining == 119


async def test_hits_addend_of_the_request_charges_that_many_and_zero_means_one(rls: Rls) -> None:
    three = await rls.ask("flowtriq", heartbeat(), hits=3)
    one = await rls.ask("flowtriq", heartbeat(), hits=0)
    over = await rls.ask("flowtriq", heartbeat(), hits=2)

    assert [three.statuses[0].limit_remaining, one.statuses[0].limit_remaining] == [2, 1]
    assert over.overall_code == OVER


async def test_a_descriptor_hits_addend_of_zero_is_a_peek_in_the_same_step(rls: Rls) -> None:
    for _ in range(5):
        await rls.ask("flowtriq", heartbeat("full"))

    peeked = await rls.ask("flowtriq", metrics(), heartbeat("n1", hits=0))
    blocked = await rls.ask("flowtriq", metrics(), heartbeat("full", hits=0))

    assert (peeked.overall_code, [s.limit_remaining for s in peeked.statuses]) == (OK, [119, 5])
    assert (blocked.overall_code, [s.code for s in blocked.statuses]) == (OVER, [OK, OVER])
    after = await rls.ask("flowtriq", metrics(), heartbeat("n1"))
    assert [s.limit_remaining for s in after.statuses] == [118, 4]  # the peek took nothing


async def test_a_descriptor_hits_addend_overrides_the_request_one(rls: Rls) -> None:
    answer = await rls.ask("flowtriq", heartbeat("a", hits=2), heartbeat("b"), hits=3)
    assert [s.limit_remaining for s in answer.statuses] == [3, 2]


async def test_descriptors_route_by_method_and_path_to_the_policy_categories(rls: Rls) -> None:
    pcap = descriptor(("method", "POST"), ("path", "/api/agent/pcap"), ("api_key", KEY),
                      ("node", "n1"))  # fmt: skip
    api = descriptor(("method", "GET"), ("path", "/api/incidents"), ("api_key", KEY))

    answer = await rls.ask("flowtriq", pcap, api)

    limits = [(s.current_limit.requests_per_unit, s.current_limit.unit) for s in answer.statuses]
    assert limits == [(10, HOUR), (1000, MINUTE)]


async def test_unmapped_descriptors_and_other_domains_are_not_limited(rls: Rls) -> None:
    unknown = descriptor(("generic_key", "something-else"))
    answer = await rls.ask("flowtriq", unknown, heartbeat())
    elsewhere = await rls.ask("another-domain", heartbeat())

    assert [s.code for s in answer.statuses] == [OK, OK]
    assert not answer.statuses[0].HasField("current_limit")
    assert answer.statuses[1].current_limit.requests_per_unit == 5
    assert (elsewhere.overall_code, elsewhere.statuses[0].HasField("current_limit")) == (OK, False)
    assert not elsewhere.response_headers_to_add


async def test_an_unknown_api_key_is_over_limit_with_the_policys_401_body(rls: Rls) -> None:
    answer = await rls.ask("flowtriq", heartbeat(key="nope"))
    assert answer.overall_code == OVER
    assert json.loads(answer.raw_body)["error"] == "unauthorized"


SHADOW_POLICY = """\
version: 1
defaults: {algorithm: fixed_window}
limits:
  per_ip: {by: ip, rate: 2/minute, shadow: true}
  per_key: {by: api_key, rate: 3/minute}
plans:
  free: {limits: {per_key: 3/minute}}
  internal: {limits: {per_key: unlimited}}
keys:
  - {key: k-free, id: free, plan: free}
  - {key: k-internal, id: internal, plan: internal}
categories:
  - {name: watched, match: /watched, charge: [per_ip], require_key: false}
  - {name: api, match: /api/**, charge: [per_key]}
envoy:
  entries: {remote_address: client_ip, key: api_key}
  descriptors:
    - {match: {remote_address: "*"}, category: watched}
    - {match: {key: "*"}, category: api}
"""


async def test_a_shadow_limit_reports_nothing_left_on_its_descriptor_and_never_denies(
    rls_factory: RlsFactory,
) -> None:
    rls = await rls_factory(SHADOW_POLICY)
    answers = [await rls.ask("any", descriptor(("remote_address", "192.0.2.1"))) for _ in range(4)]

    assert [a.overall_code for a in answers] == [OK] * 4
    assert [a.statuses[0].code for a in answers] == [OK] * 4  # as the reference's statuses
    assert [a.statuses[0].limit_remaining for a in answers] == [1, 0, 0, 0]
    assert not answers[3].raw_body


async def test_an_unlimited_plan_is_ok_without_a_limit_and_per_key_plans_apply(
    rls_factory: RlsFactory,
) -> None:
    rls = await rls_factory(SHADOW_POLICY)
    internal = [await rls.ask("any", descriptor(("key", "k-internal"))) for _ in range(10)]
    free = [await rls.ask("any", descriptor(("key", "k-free"))) for _ in range(4)]

    assert {a.overall_code for a in internal} == {OK}
    assert not internal[-1].statuses[0].HasField("current_limit")
    assert [a.overall_code for a in free] == [OK, OK, OK, OVER]
    assert free[0].statuses[0].current_limit.requests_per_unit == 3


async def test_the_standard_health_service_says_serving(rls: Rls) -> None:
    health = health_pb2_grpc.HealthStub(rls.channel)
    for name in ("", "envoy.service.ratelimit.v3.RateLimitService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_store_failing_closed_is_grpc_unavailable_so_envoy_decides(
    rls_factory: RlsFactory,
) -> None:
    from ratekeeper.stores import RedisStore

    dead = RedisStore.from_url("redis://127.0.0.1:1/0", on_error="closed")
    rls = await rls_factory(store=dead)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rls.ask("flowtriq", heartbeat())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("domain", "descriptors", "message"),
    [
        ("", [descriptor(("remote_address", "192.0.2.1"))], "domain must not be empty"),
        ("flowtriq", [], "descriptor list must not be empty"),
    ],
)
async def test_a_request_without_domain_or_descriptors_is_an_invalid_argument(
    rls: Rls, domain: str, descriptors: list[Any], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rls.ask(domain, *descriptors)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_a_descriptor_limit_override_replaces_the_policy_rate_and_keeps_the_key_check(
    rls: Rls,
) -> None:
    minute = rls_pb2.RateLimitResponse.RateLimit.MINUTE
    capped = lambda key=KEY: descriptor(  # noqa: E731
        ("generic_key", "heartbeat"), ("api_key", key), ("node", "n1"), limit=(2, minute)
    )
    answers = [await rls.ask("flowtriq", capped()) for _ in range(3)]
    unknown = await rls.ask("flowtriq", capped("nope"))
    policy_count = await rls.ask("flowtriq", heartbeat())  # the policy's 5 left alone

    assert [a.overall_code for a in answers] == [OK, OK, OVER]
    assert answers[0].statuses[0].current_limit.requests_per_unit == 2
    assert unknown.overall_code == OVER
    assert json.loads(unknown.raw_body)["error"] == "unauthorized"
    assert policy_count.statuses[0].limit_remaining == 4


TWO_RATES_POLICY = """
version: 1
limits:
  strict: {by: ip, rate: 1/minute, algorithm: fixed_window}
  watched: {by: ip, rate: 1/hour, algorithm: fixed_window, shadow: true}
categories:
  - {name: api, match: /api/**, charge: [strict, watched]}
envoy:
  entries: {remote_address: client_ip}
  descriptors: [{match: {remote_address: "*"}, category: api}]
"""


async def test_a_refused_descriptor_reports_its_enforced_limit_not_a_shadow_one(
    rls_factory: RlsFactory,
) -> None:
    rls = await rls_factory(TWO_RATES_POLICY)
    ip = descriptor(("remote_address", "192.0.2.1"))
    await rls.ask("any", ip)
    second = await rls.ask("any", ip)  # over both: the hour's wait is longer, but only watched

    assert second.overall_code == OVER
    assert second.statuses[0].code == OVER
    assert second.statuses[0].current_limit.requests_per_unit == 1
    assert second.statuses[0].current_limit.unit == rls_pb2.RateLimitResponse.RateLimit.MINUTE

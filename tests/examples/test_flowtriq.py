"""examples/flowtriq.yaml: the DDoS-detection API and its agents, as SEEDS.md documents them.

| category         | limit | window     | keyed by  |
| API (general)    | 1,000 | per minute | API key   |
| Auth endpoints   | 100   | per minute | client IP |
| Agent heartbeats | 5     | per minute | node      |
| Agent metrics    | 120   | per minute | node      |
| PCAP uploads     | 10    | per hour   | node      |

X-RateLimit-Reset is "when the window resets": fixed, clock-aligned windows.
Agent and auth endpoints count only against their own category's limit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pytest loads conftest; importing it at run time is unreliable
    from conftest import ExampleApi, ExampleFactory

T0 = 1_700_000_040.0  # a minute boundary
MINUTE_END = T0 + 60  # the clock-aligned minute [T0, T0 + 60)
HOUR_END = 1_700_002_800.0  # the clock-aligned hour that holds T0 ends here (472_223 * 3600)

KEY = "demo-key"
IP = "203.0.113.7"
OTHER_IP = "203.0.113.8"

UNAUTHORIZED_BODY = (
    b'{"error": "unauthorized", '
    b'"message": "A valid API key is required (X-API-Key or Authorization Bearer)."}'
)

AGENT_LIMITS = [
    pytest.param("/api/agent/heartbeat", "heartbeat", 5, MINUTE_END, id="heartbeat"),
    pytest.param("/api/agent/metrics", "metrics", 120, MINUTE_END, id="metrics"),
    pytest.param("/api/agent/pcap", "pcap", 10, HOUR_END, id="pcap"),
]


@pytest.fixture
def api(example: ExampleFactory) -> ExampleApi:
    return example("flowtriq", T0)


def node(name: str) -> dict[str, str]:
    return {"X-API-Key": KEY, "X-Node-ID": name}


# general API: per key, fixed minute


def test_the_general_api_allows_1000_requests_a_minute_per_key(api: ExampleApi) -> None:
    allowed = api.repeat(1000, "GET", "/api/incidents", key=KEY)
    refused = api.check("GET", "/api/incidents", key=KEY)

    assert all(d.allowed and d.category == "api" for d in allowed)
    assert allowed[-1].headers == api.rate_headers(1000, 0, MINUTE_END)
    assert (refused.status_code, refused.category, refused.limit) == (429, "api", 1000)
    assert refused.headers == api.rate_headers(1000, 0, MINUTE_END, retry_after=60)


def test_the_api_limit_follows_the_key_across_client_ips(api: ExampleApi) -> None:
    api.repeat(500, "GET", "/api/incidents", key=KEY, ip=IP)
    api.repeat(500, "GET", "/api/devices", key=KEY, ip=OTHER_IP)
    refused = api.check("GET", "/api/incidents", key=KEY, ip="198.51.100.20")

    assert refused.status_code == 429


def test_x_ratelimit_reset_is_the_end_of_the_clock_aligned_window(api: ExampleApi) -> None:
    api.advance(17.5)
    first = api.check("GET", "/api/incidents", key=KEY)
    api.at(MINUTE_END - 0.001)
    last_of_minute = api.check("GET", "/api/incidents", key=KEY)
    api.at(MINUTE_END)
    next_minute = api.check("GET", "/api/incidents", key=KEY)

    assert first.headers == api.rate_headers(1000, 999, MINUTE_END)
    assert last_of_minute.headers == api.rate_headers(1000, 998, MINUTE_END)
    # a fixed window: the whole quota is back at the top of the minute
    assert next_minute.headers == api.rate_headers(1000, 999, MINUTE_END + 60)


def test_a_429_says_to_wait_for_the_window_end_and_waiting_until_reset_succeeds(
    api: ExampleApi,
) -> None:
    api.advance(30)
    api.repeat(1000, "GET", "/api/incidents", key=KEY)
    refused = api.check("GET", "/api/incidents", key=KEY)

    assert refused.headers == api.rate_headers(1000, 0, MINUTE_END, retry_after=30)
    assert api.refusal_timing(refused) == (30, MINUTE_END)
    assert refused.body is not None
    assert json.loads(refused.body) == {
        "error": "rate_limit_exceeded",
        "message": "Rate limit exceeded for api. Retry after 30 seconds.",
        "limit": 1000,
        "reset": int(MINUTE_END),
        "retry_after": 30,
    }

    api.at(MINUTE_END)
    again = api.check("GET", "/api/incidents", key=KEY)
    assert (again.allowed, again.remaining) == (True, 999)


def test_retry_after_is_never_0_a_moment_before_the_window_ends(api: ExampleApi) -> None:
    api.repeat(1000, "GET", "/api/incidents", key=KEY)
    api.at(MINUTE_END - 0.000_001)
    refused = api.check("GET", "/api/incidents", key=KEY)

    assert refused.headers == api.rate_headers(1000, 0, MINUTE_END, retry_after=1)


def test_allowed_responses_carry_the_three_headers_and_no_retry_after(api: ExampleApi) -> None:
    decisions = [
        api.check("GET", "/api/incidents", key=KEY),
        api.check("POST", "/api/auth/login"),
        api.check("POST", "/api/agent/metrics", headers=node("edge-1")),
    ]
    for decision in decisions:
        assert decision.allowed
        assert set(decision.headers) == {
            "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
        }  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "not-a-key"}, {"Authorization": "Bearer not-a-key"}],
    ids=["no-key", "unknown-key", "unknown-bearer"],
)
def test_the_general_api_without_a_known_key_gets_401(
    api: ExampleApi, headers: dict[str, str]
) -> None:
    decision = api.check("GET", "/api/incidents", headers=headers)

    assert (decision.status_code, decision.headers) == (401, {})
    assert decision.body == UNAUTHORIZED_BODY


def test_a_bearer_token_is_the_same_key(api: ExampleApi) -> None:
    api.check("GET", "/api/incidents", key=KEY)
    bearer = api.check("GET", "/api/incidents", headers={"Authorization": f"Bearer {KEY}"})

    assert (bearer.allowed, bearer.remaining) == (True, 998)


# auth endpoints: per client IP, no key


def test_auth_endpoints_allow_100_requests_a_minute_per_client_ip_without_a_key(
    api: ExampleApi,
) -> None:
    allowed = api.repeat(100, "POST", "/api/auth/login", ip=IP)
    refused = api.check("POST", "/api/auth/token/refresh", ip=IP)
    other = api.check("POST", "/api/auth/login", ip=OTHER_IP)

    assert all(d.allowed and d.category == "auth" and d.plan is None for d in allowed)
    assert (refused.status_code, refused.category) == (429, "auth")
    assert refused.headers == api.rate_headers(100, 0, MINUTE_END, retry_after=60)
    assert other.headers == api.rate_headers(100, 99, MINUTE_END)


def test_auth_endpoints_ignore_an_unknown_key(api: ExampleApi) -> None:
    decision = api.check("POST", "/api/auth/login", key="an-expired-key")
    assert (decision.allowed, decision.category) == (True, "auth")


def test_auth_requests_do_not_consume_the_general_api_limit(api: ExampleApi) -> None:
    api.repeat(100, "POST", "/api/auth/login", key=KEY)
    decision = api.check("GET", "/api/incidents", key=KEY)

    assert (decision.limit, decision.remaining) == (1000, 999)


def test_the_auth_limit_follows_the_forwarded_client_behind_a_trusted_proxy(
    api: ExampleApi,
) -> None:
    api.repeat(100, "POST", "/api/auth/login", ip="127.0.0.1", headers={"X-Forwarded-For": IP})
    refused = api.check("POST", "/api/auth/login", ip="127.0.0.1", headers={"X-Forwarded-For": IP})
    other = api.check(
        "POST", "/api/auth/login", ip="127.0.0.1", headers={"X-Forwarded-For": OTHER_IP}
    )
    spoofer = api.check(
        "POST", "/api/auth/login", ip="198.51.100.9", headers={"X-Forwarded-For": OTHER_IP}
    )

    assert (refused.status_code, refused.client_ip) == (429, IP)
    assert (other.allowed, other.remaining) == (True, 99)
    assert (spoofer.client_ip, spoofer.remaining) == ("198.51.100.9", 99)


# agents: per node


@pytest.mark.parametrize(("path", "category", "limit", "window_end"), AGENT_LIMITS)
def test_each_agent_endpoint_allows_its_limit_per_node_in_a_clock_aligned_window(
    api: ExampleApi, path: str, category: str, limit: int, window_end: float
) -> None:
    api.advance(10)
    allowed = api.repeat(limit, "POST", path, headers=node("edge-1"))
    refused = api.check("POST", path, headers=node("edge-1"))
    retry_after = int(window_end - api.now)

    assert all(d.allowed and d.category == category for d in allowed)
    assert allowed[0].headers == api.rate_headers(limit, limit - 1, window_end)
    assert (refused.status_code, refused.category) == (429, category)
    assert refused.headers == api.rate_headers(limit, 0, window_end, retry_after=retry_after)
    assert refused.body is not None
    assert json.loads(refused.body) == {
        "error": "rate_limit_exceeded",
        "message": f"Rate limit exceeded for {category}. Retry after {retry_after} seconds.",
        "limit": limit,
        "reset": int(window_end),
        "retry_after": retry_after,
    }

    api.at(window_end)
    assert api.check("POST", path, headers=node("edge-1")).remaining == limit - 1


@pytest.mark.parametrize(("path", "category", "limit", "window_end"), AGENT_LIMITS)
def test_agent_nodes_are_isolated_from_each_other(
    api: ExampleApi, path: str, category: str, limit: int, window_end: float
) -> None:
    api.repeat(limit, "POST", path, headers=node("edge-1"))
    refused = api.check("POST", path, headers=node("edge-1"))
    other = api.check("POST", path, headers=node("edge-2"))

    assert refused.status_code == 429
    assert (other.allowed, other.category, other.remaining) == (True, category, limit - 1)


def test_agent_categories_do_not_share_a_node_s_quota(api: ExampleApi) -> None:
    api.repeat(5, "POST", "/api/agent/heartbeat", headers=node("edge-1"))
    heartbeat = api.check("POST", "/api/agent/heartbeat", headers=node("edge-1"))
    metrics = api.check("POST", "/api/agent/metrics", headers=node("edge-1"))
    pcap = api.check("POST", "/api/agent/pcap", headers=node("edge-1"))

    assert heartbeat.status_code == 429
    assert (metrics.allowed, metrics.remaining) == (True, 119)
    assert (pcap.allowed, pcap.remaining) == (True, 9)


def test_agent_requests_do_not_consume_the_general_api_limit(api: ExampleApi) -> None:
    api.repeat(5, "POST", "/api/agent/heartbeat", headers=node("edge-1"))
    api.repeat(120, "POST", "/api/agent/metrics", headers=node("edge-1"))
    api.repeat(10, "POST", "/api/agent/pcap", headers=node("edge-1"))
    decision = api.check("GET", "/api/incidents", key=KEY)

    assert (decision.limit, decision.remaining) == (1000, 999)


def test_only_post_is_an_agent_request_other_methods_are_general_api(api: ExampleApi) -> None:
    decision = api.check("GET", "/api/agent/heartbeat", headers=node("edge-1"))
    assert (decision.category, decision.limit, decision.remaining) == ("api", 1000, 999)


def test_the_node_header_is_matched_case_insensitively(api: ExampleApi) -> None:
    api.check("POST", "/api/agent/heartbeat", headers=node("edge-1"))
    lower = api.check(
        "POST", "/api/agent/heartbeat", headers={"x-node-id": "edge-1", "x-api-key": KEY}
    )
    assert lower.remaining == 3


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"X-API-Key": KEY}, "missing X-Node-ID"),
        ({"X-API-Key": KEY, "X-Node-ID": ""}, "missing X-Node-ID"),
        ({"X-API-Key": KEY, "X-Node-ID": "n" * 257}, "X-Node-ID is longer than 256 characters"),
    ],
    ids=["missing", "empty", "over-long"],
)
def test_an_agent_request_without_a_usable_node_id_is_400_and_charges_nothing(
    api: ExampleApi, headers: dict[str, str], detail: str
) -> None:
    decision = api.check("POST", "/api/agent/heartbeat", headers=headers)
    after = api.check("GET", "/api/incidents", key=KEY)

    assert (decision.allowed, decision.status_code, decision.headers) == (False, 400, {})
    assert decision.body is not None
    assert json.loads(decision.body) == {"error": "bad_request", "message": detail}
    assert after.remaining == 999


def test_agent_endpoints_need_the_key(api: ExampleApi) -> None:
    decision = api.check("POST", "/api/agent/heartbeat", headers={"X-Node-ID": "edge-1"})

    assert (decision.status_code, decision.body) == (401, UNAUTHORIZED_BODY)

"""examples/flowcms.yaml: the CMS API's limits per key by tier, as SEEDS.md documents them.

| plan         | per hour            | per minute          | concurrent connections |
| Starter      | 1,000               | 60                  | 5                      |
| Professional | 50,000              | 1,000               | 50                     |
| Enterprise   | custom or unlimited | custom or unlimited | custom or unlimited    |

Sliding windows; one limit per key across /api/* and /graphql; /api/auth/*
10 per minute per client IP instead; /webhooks/* exempt. X-RateLimit-Limit is
the tier's per-minute limit (``headers: {report: minute}``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from ratekeeper import PolicyDecision
from support.bodies import assert_json_body

if TYPE_CHECKING:  # pytest loads conftest; importing it at run time is unreliable
    from conftest import ExampleApi, ExampleFactory

T0 = 1_700_000_040.0  # a minute boundary
HOUR_END = 1_700_002_800.0  # the clock-aligned hour that holds T0 ends here

STARTER, PROFESSIONAL = "demo-starter", "demo-professional"
ENTERPRISE, CUSTOM = "demo-enterprise", "demo-enterprise-custom"
IP = "203.0.113.7"
OTHER_IP = "203.0.113.8"
DOCS_URL = "https://docs.flowcms.io/rate-limits"

# SEEDS.md, provider 3, verbatim (its 38 seconds are an example value)
SEEDS_429 = (
    '{"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "You have exceeded your API rate '
    'limit. Please retry after 38 seconds.", "retry_after": 38, '
    '"docs_url": "https://docs.flowcms.io/rate-limits"}}'
)
UNAUTHORIZED_BODY = (
    b'{"error": {"code": "UNAUTHORIZED", "message": "A valid API key is required.", '
    b'"docs_url": "https://docs.flowcms.io/rate-limits"}}'
)


def seeds_429_body(retry_after: int) -> bytes:
    text = SEEDS_429.replace("after 38 seconds", f"after {retry_after} seconds")
    return text.replace('"retry_after": 38', f'"retry_after": {retry_after}').encode()


def assert_seeds_429_body(decision: PolicyDecision, retry_after: int) -> None:
    assert_json_body(decision, seeds_429_body(retry_after))


@pytest.fixture
def api(example: ExampleFactory) -> ExampleApi:
    return example("flowcms", T0)


def fill_starter_hour(api: ExampleApi) -> PolicyDecision:
    """1000 starter requests in one clock hour, 50 every other minute; the last decision.

    Every burst starts after a minute with no requests, so the minute limit
    always has room for 50: only the hourly quota runs out.
    """
    last = None
    for burst in range(20):
        api.at(T0 + 120 * burst)
        decisions = api.repeat(50, "GET", "/api/pages", key=STARTER)
        assert all(d.allowed for d in decisions)
        last = decisions[-1]
    assert last is not None
    assert api.now == T0 + 2280 < HOUR_END
    return last


def test_the_seeds_body_text_is_what_json_dumps_writes() -> None:
    assert json.dumps(json.loads(SEEDS_429)) == SEEDS_429


# tiers


@pytest.mark.parametrize(
    ("key", "plan", "per_minute", "per_hour", "cap"),
    [
        (STARTER, "starter", 60, 1000, 5),
        (PROFESSIONAL, "professional", 1000, 50000, 50),
        (CUSTOM, "enterprise", 5000, 200000, 200),
    ],
)
def test_each_tier_is_charged_its_minute_and_hour_limits_and_carries_its_concurrency_cap(
    api: ExampleApi, key: str, plan: str, per_minute: int, per_hour: int, cap: int
) -> None:
    decision = api.check("GET", "/api/pages", key=key)

    assert (decision.allowed, decision.plan) == (True, plan)
    assert [(s.name, s.limit, s.remaining, s.window) for s in decision.statuses] == [
        ("api-1m", per_minute, per_minute - 1, 60.0),
        ("api-1h", per_hour, per_hour - 1, 3600.0),
    ]
    assert decision.headers == api.rate_headers(per_minute, per_minute - 1, T0 + 120)
    assert [(limit, ttl) for _key, limit, ttl in decision.concurrency] == [(cap, 300.0)]


@pytest.mark.parametrize(
    ("key", "per_minute"), [(STARTER, 60), (PROFESSIONAL, 1000), (CUSTOM, 5000)]
)
def test_each_tier_allows_its_requests_per_minute_then_refuses(
    api: ExampleApi, key: str, per_minute: int
) -> None:
    allowed = api.repeat(per_minute, "GET", "/api/pages", key=key)
    refused = api.check("GET", "/api/pages", key=key)

    assert all(d.allowed for d in allowed)
    assert allowed[-1].headers == api.rate_headers(per_minute, 0, T0 + 120)
    assert (refused.status_code, refused.limit, refused.remaining) == (429, per_minute, 0)
    retry_after, _reset = api.refusal_timing(refused)
    assert_seeds_429_body(refused, retry_after)


def test_enterprise_is_unlimited_sends_no_rate_headers_and_has_no_concurrency_cap(
    api: ExampleApi,
) -> None:
    decisions = api.repeat(6000, "GET", "/api/pages", key=ENTERPRISE)

    assert all(d.allowed and d.plan == "enterprise" for d in decisions)
    last = decisions[-1]
    assert (last.headers, last.statuses, last.concurrency) == ({}, (), ())
    assert last.exempt is False


def test_the_starter_tier_allows_1000_requests_an_hour(api: ExampleApi) -> None:
    last = fill_starter_hour(api)
    refused = api.check("GET", "/api/pages", key=STARTER)

    assert [(s.name, s.remaining) for s in last.statuses] == [("api-1m", 10), ("api-1h", 0)]
    assert refused.status_code == 429
    assert [(s.name, s.allowed) for s in refused.statuses] == [
        ("api-1m", True),
        ("api-1h", False),
    ]
    # 1000 in this hour: they weigh 1000 * (3600 - s) / 3600 at s seconds into
    # the next hour, which leaves room for one at s = 4
    assert api.refusal_timing(refused) == (484, HOUR_END + 4)
    assert_seeds_429_body(refused, 484)

    api.at(HOUR_END + 4)
    assert api.check("GET", "/api/pages", key=STARTER).allowed


def test_x_ratelimit_limit_reports_the_per_minute_limit_even_when_the_hour_is_tighter(
    api: ExampleApi,
) -> None:
    last = fill_starter_hour(api)

    # the hour has 0 left, the minute 10: `report: minute` reports the minute
    assert last.headers == api.rate_headers(60, 10, T0 + 2280 + 120)


def test_x_ratelimit_limit_stays_the_per_minute_limit_on_a_429_from_the_hourly_quota(
    api: ExampleApi,
) -> None:
    fill_starter_hour(api)
    refused = api.check("GET", "/api/pages", key=STARTER)

    assert refused.headers == api.rate_headers(60, 0, HOUR_END + 4, retry_after=484)


# sliding windows


def test_limits_slide_instead_of_resetting_at_the_top_of_the_minute(api: ExampleApi) -> None:
    api.repeat(60, "GET", "/api/pages", key=STARTER)
    api.at(T0 + 60)  # a fixed window would start afresh here
    at_the_boundary = api.check("GET", "/api/pages", key=STARTER)
    api.at(T0 + 90)  # half of the last minute's 60 still count: room for 30
    half_way = api.repeat(31, "GET", "/api/pages", key=STARTER)

    assert at_the_boundary.status_code == 429
    assert all(d.allowed for d in half_way[:30])
    assert half_way[30].status_code == 429


def test_a_client_that_waits_until_reset_succeeds(api: ExampleApi) -> None:
    api.advance(12.25)
    api.repeat(60, "GET", "/api/pages", key=STARTER)
    api.advance(20.5)
    refused = api.check("GET", "/api/pages", key=STARTER)
    retry_after, reset = api.refusal_timing(refused)
    assert_seeds_429_body(refused, retry_after)

    api.at(reset)
    assert api.check("GET", "/api/pages", key=STARTER).allowed


# one limit for REST and GraphQL


def test_rest_and_graphql_share_one_limit_per_key(api: ExampleApi) -> None:
    rest = api.repeat(30, "GET", "/api/pages", key=STARTER)
    graphql = api.repeat(30, "POST", "/graphql", key=STARTER)
    refused_rest = api.check("DELETE", "/api/pages/7", key=STARTER)
    refused_graphql = api.check("POST", "/graphql/", key=STARTER)

    assert all(d.allowed and d.category == "api" for d in rest + graphql)
    assert graphql[-1].headers == api.rate_headers(60, 0, T0 + 120)
    assert (refused_rest.status_code, refused_graphql.status_code) == (429, 429)


def test_the_limit_is_per_key_not_per_ip(api: ExampleApi) -> None:
    api.repeat(60, "GET", "/api/pages", key=STARTER, ip=IP)
    same_key = api.check("GET", "/api/pages", key=STARTER, ip=OTHER_IP)
    other_key = api.check("GET", "/api/pages", key=PROFESSIONAL, ip=IP)

    assert same_key.status_code == 429
    assert (other_key.allowed, other_key.remaining) == (True, 999)


def test_a_bearer_token_is_the_same_key(api: ExampleApi) -> None:
    api.check("GET", "/api/pages", key=STARTER)
    bearer = api.check("POST", "/graphql", headers={"Authorization": f"Bearer {STARTER}"})

    assert (bearer.plan, bearer.remaining) == ("starter", 58)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "not-a-key"}, {"Authorization": "Bearer not-a-key"}],
    ids=["no-key", "unknown-key", "unknown-bearer"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/pages"), ("POST", "/graphql")])
def test_a_request_without_a_known_key_gets_401(
    api: ExampleApi, headers: dict[str, str], method: str, path: str
) -> None:
    decision = api.check(method, path, headers=headers)

    assert (decision.status_code, decision.headers, decision.concurrency) == (401, {}, ())
    assert decision.body == UNAUTHORIZED_BODY


# authentication endpoints


def test_auth_endpoints_allow_10_requests_a_minute_per_client_ip_without_a_key(
    api: ExampleApi,
) -> None:
    allowed = api.repeat(10, "POST", "/api/auth/login", ip=IP)
    refused = api.check("POST", "/api/auth/password-reset", ip=IP)
    other = api.check("POST", "/api/auth/login", ip=OTHER_IP)

    assert all(d.allowed and d.category == "auth" and d.plan is None for d in allowed)
    assert allowed[0].headers == api.rate_headers(10, 9, T0 + 120)
    assert (refused.status_code, refused.category, refused.limit) == (429, "auth", 10)
    retry_after, _reset = api.refusal_timing(refused)
    assert_seeds_429_body(refused, retry_after)
    assert (other.allowed, other.remaining) == (True, 9)


def test_auth_requests_do_not_consume_the_key_s_limit_nor_take_a_connection(
    api: ExampleApi,
) -> None:
    auth = api.repeat(10, "POST", "/api/auth/login", key=STARTER)
    decision = api.check("GET", "/api/pages", key=STARTER)

    assert {d.concurrency for d in auth} == {()}
    assert (decision.limit, decision.remaining) == (60, 59)


# webhooks


@pytest.mark.parametrize("path", ["/webhooks", "/webhooks/stripe", "/webhooks/github/push"])
def test_webhooks_are_exempt_uncounted_and_send_no_headers(api: ExampleApi, path: str) -> None:
    decisions = api.repeat(100, "POST", path)

    for decision in decisions:
        assert (decision.allowed, decision.exempt, decision.category) == (True, True, "webhooks")
        assert (decision.headers, decision.body, decision.concurrency) == ({}, None, ())


# concurrency


@pytest.mark.faces("limiter")  # it takes the leases itself; test_http_faces.py sends requests
def test_the_starter_cap_admits_five_requests_in_flight_per_key(api: ExampleApi) -> None:
    decision = api.check("GET", "/api/pages", key=STARTER)
    [(lease_key, cap, ttl)] = decision.concurrency
    leases = api.limiter.store.leases

    grants = [leases.acquire(lease_key, cap, ttl) for _ in range(6)]
    other = api.check("GET", "/api/pages", key=PROFESSIONAL).concurrency[0][0]

    assert [grant.acquired for grant in grants] == [True] * 5 + [False]
    assert other != lease_key
    assert api.check("POST", "/graphql", key=STARTER).concurrency[0][0] == lease_key

"""examples/scanner.yaml: the server-scanning API's plans, as SEEDS.md documents them.

| plan       | API requests   | scans     |
| anonymous  | 30 / minute    | 5 / hour  |  per client IP
| free       | 60 / minute    | 20 / hour |
| pro        | 300 / minute   | 100 / hour|
| enterprise | 1,000 / minute | unlimited |

A scan counts against both the API limit and the scan quota. The API limit is
a sliding window counter (the policy default); the scan quota a sliding log.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore, PolicyDecision
from support.bodies import assert_json_body

if TYPE_CHECKING:  # pytest loads conftest; importing it at run time is unreliable
    from conftest import ExampleApi, ExampleFactory

T0 = 1_700_000_040.0  # a minute boundary: the minute window [T0, T0 + 60) starts here

FREE, PRO, ENTERPRISE = "demo-free", "demo-pro", "demo-enterprise"
IP = "203.0.113.7"
OTHER_IP = "203.0.113.8"
UNTRUSTED = "198.51.100.9"  # a peer that is not one of the example's trusted proxies

# SEEDS.md, provider 2, verbatim (its "retryAfter": 30 is an example value)
SEEDS_429 = (
    '{"success": false, "error": {"code": "RATE_LIMIT_EXCEEDED", '
    '"message": "Too many requests. Please try again later.", "retryAfter": 30}}'
)
UNAUTHORIZED_BODY = (
    b'{"success": false, "error": {"code": "INVALID_API_KEY", '
    b'"message": "The API key is missing or not valid."}}'
)


def seeds_429_body(retry_after: int) -> bytes:
    return SEEDS_429.replace('"retryAfter": 30}', f'"retryAfter": {retry_after}}}').encode()


def assert_seeds_429_body(decision: PolicyDecision, retry_after: int) -> None:
    assert_json_body(decision, seeds_429_body(retry_after))


@pytest.fixture
def api(example: ExampleFactory) -> ExampleApi:
    return example("scanner", T0)


def test_the_seeds_body_text_is_what_json_dumps_writes() -> None:
    # so that comparing bytes with the SEEDS text pins separators and key order
    assert json.dumps(json.loads(SEEDS_429)) == SEEDS_429


# anonymous: per client IP


def test_anonymous_callers_get_30_requests_a_minute_per_client_ip(api: ExampleApi) -> None:
    allowed = api.repeat(30, "GET", "/api/servers", ip=IP)
    refused = api.check("GET", "/api/servers", ip=IP)
    other = api.check("GET", "/api/servers", ip=OTHER_IP)

    assert all(d.allowed and d.plan == "anonymous" for d in allowed)
    assert [d.remaining for d in allowed] == list(range(29, -1, -1))
    assert (refused.status_code, refused.plan, refused.category) == (429, "anonymous", "listing")
    assert (refused.limit, refused.remaining) == (30, 0)
    assert (other.status_code, other.limit, other.remaining) == (200, 30, 29)


def test_anonymous_listing_and_other_api_endpoints_share_the_per_ip_limit(
    api: ExampleApi,
) -> None:
    listing = api.repeat(15, "GET", "/api/servers", ip=IP)
    others = api.repeat(15, "GET", "/api/servers/42/results", ip=IP)
    refused = api.check("GET", "/api/servers", ip=IP)

    assert all(d.allowed for d in listing + others)
    assert {d.category for d in others} == {"api"}
    assert (refused.status_code, refused.limit) == (429, 30)


def test_anonymous_callers_get_5_scans_an_hour_per_client_ip(api: ExampleApi) -> None:
    scans = api.repeat(5, "POST", "/api/scans", ip=IP)
    refused = api.check("POST", "/api/scans", ip=IP)
    other = api.check("POST", "/api/scans", ip=OTHER_IP)

    assert all(d.allowed and d.plan == "anonymous" and d.category == "scans" for d in scans)
    assert (refused.status_code, refused.limit, refused.retry_after) == (429, 5, 3600.0)
    assert refused.headers == api.rate_headers(5, 0, T0 + 3600, retry_after=3600)
    assert (other.allowed, other.limit, other.remaining) == (True, 5, 4)


# plans with keys


@pytest.mark.parametrize(
    ("key", "plan", "per_minute"),
    [(FREE, "free", 60), (PRO, "pro", 300), (ENTERPRISE, "enterprise", 1000)],
)
def test_each_plan_allows_its_api_requests_per_minute_then_refuses(
    api: ExampleApi, key: str, plan: str, per_minute: int
) -> None:
    allowed = api.repeat(per_minute, "GET", "/api/servers", key=key)
    refused = api.check("GET", "/api/servers", key=key)

    assert all(d.allowed and d.plan == plan for d in allowed)
    assert allowed[0].headers == api.rate_headers(per_minute, per_minute - 1, T0 + 120)
    assert (refused.status_code, refused.plan, refused.limit, refused.remaining) == (
        429, plan, per_minute, 0,
    )  # fmt: skip


@pytest.mark.parametrize(("key", "per_hour"), [(FREE, 20), (PRO, 100)])
def test_each_plan_allows_its_scans_per_hour_then_refuses(
    api: ExampleApi, key: str, per_hour: int
) -> None:
    scans = api.repeat(per_hour, "POST", "/api/scans", key=key)
    refused = api.check("POST", "/api/scans", key=key)

    assert all(d.allowed and d.category == "scans" for d in scans)
    assert (refused.status_code, refused.category, refused.limit) == (429, "scans", per_hour)
    assert refused.headers == api.rate_headers(per_hour, 0, T0 + 3600, retry_after=3600)
    assert_seeds_429_body(refused, 3600)


def test_enterprise_scans_are_unlimited_and_only_the_api_limit_applies(
    api: ExampleApi,
) -> None:
    scans = api.repeat(150, "POST", "/api/scans", key=ENTERPRISE)

    assert all(d.allowed for d in scans)
    assert [status.name for status in scans[-1].statuses] == ["api"]
    assert scans[-1].headers == api.rate_headers(1000, 850, T0 + 120)

    api.advance(30)  # still the same minute: the remaining 850 API requests, then no more
    more = api.repeat(850, "POST", "/api/scans", key=ENTERPRISE)
    refused = api.check("POST", "/api/scans", key=ENTERPRISE)

    assert all(d.allowed for d in more)
    assert (refused.status_code, refused.category, refused.limit) == (429, "scans", 1000)


def test_a_scan_counts_against_both_the_api_limit_and_the_scan_quota(api: ExampleApi) -> None:
    scans = api.repeat(20, "POST", "/api/scans", key=FREE)
    listing = api.check("GET", "/api/servers", key=FREE)

    last = scans[-1]
    assert [(s.name, s.limit, s.remaining) for s in last.statuses] == [
        ("api", 60, 40),
        ("scans", 20, 0),
    ]
    assert listing.headers == api.rate_headers(60, 39, T0 + 120)


def test_a_refused_scan_takes_nothing_from_the_api_limit(api: ExampleApi) -> None:
    api.repeat(20, "POST", "/api/scans", key=FREE)
    refused = [api.check("POST", "/api/scans", key=FREE) for _ in range(5)]
    listing = api.check("GET", "/api/servers", key=FREE)

    assert {d.status_code for d in refused} == {429}
    assert [(s.name, s.allowed, s.remaining) for s in refused[-1].statuses] == [
        ("api", True, 40),
        ("scans", False, 0),
    ]
    assert (listing.limit, listing.remaining) == (60, 39)


def test_a_scan_refused_by_the_api_limit_takes_nothing_from_the_scan_quota(
    api: ExampleApi,
) -> None:
    api.repeat(60, "GET", "/api/servers", key=FREE)
    refused = api.check("POST", "/api/scans", key=FREE)
    api.advance(120)  # the API limit has its whole quota back
    scan = api.check("POST", "/api/scans", key=FREE)

    assert (refused.status_code, refused.category, refused.limit) == (429, "scans", 60)
    assert [(s.name, s.allowed, s.remaining) for s in refused.statuses] == [
        ("api", False, 0),
        ("scans", True, 20),
    ]
    assert [(s.name, s.remaining) for s in scan.statuses] == [("api", 59), ("scans", 19)]


# identity


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Bearer not-a-key"},
        {"X-API-Key": "k" * 600},
    ],
    ids=["x-api-key", "bearer", "over-long"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/servers"), ("POST", "/api/scans")])
def test_an_unknown_key_gets_401_with_the_example_body_not_the_anonymous_plan(
    api: ExampleApi, headers: dict[str, str], method: str, path: str
) -> None:
    decision = api.check(method, path, headers=headers)

    assert (decision.allowed, decision.status_code, decision.plan) == (False, 401, None)
    assert decision.body == UNAUTHORIZED_BODY
    assert decision.content_type == "application/json"
    assert decision.headers == {}


def test_bearer_and_x_api_key_name_the_same_key_and_counter(api: ExampleApi) -> None:
    first = api.check("GET", "/api/servers", key=FREE)
    second = api.check("GET", "/api/servers", headers={"Authorization": f"Bearer {FREE}"})

    assert (first.plan, first.remaining) == ("free", 59)
    assert (second.plan, second.remaining) == ("free", 58)


def test_keys_and_anonymous_callers_from_one_ip_count_separately(api: ExampleApi) -> None:
    api.repeat(30, "GET", "/api/servers", ip=IP)
    anonymous = api.check("GET", "/api/servers", ip=IP)
    keyed = api.check("GET", "/api/servers", key=FREE, ip=IP)

    assert anonymous.status_code == 429
    assert (keyed.allowed, keyed.remaining) == (True, 59)


# headers and bodies


def test_allowed_responses_report_the_tightest_limit_and_no_retry_after(
    api: ExampleApi,
) -> None:
    api.advance(17)
    listing = api.check("GET", "/api/servers", key=FREE)
    scan = api.check("POST", "/api/scans", key=FREE)

    # sliding window counter: the minute's count weighs on the next minute too,
    # so the whole quota is back at the end of the next window (T0 + 120)
    assert listing.headers == api.rate_headers(60, 59, T0 + 120)
    # the scan's tightest limit is the hourly quota (19 left < 58 left); a sliding
    # log has it all back an hour after the scan
    assert scan.headers == api.rate_headers(20, 19, T0 + 17 + 3600)


def test_a_429_carries_retry_after_reset_and_the_seeds_body(api: ExampleApi) -> None:
    api.repeat(30, "GET", "/api/servers", ip=IP)
    refused = api.check("GET", "/api/servers", ip=IP)

    # 30 requests at the start of a minute: they weigh 30 * (60 - s) / 60 at s
    # seconds into the next minute, which is 29 (room for one) at s = 2: T0 + 62
    assert refused.headers == api.rate_headers(30, 0, T0 + 62, retry_after=62)
    assert api.refusal_timing(refused) == (62, T0 + 62)
    assert_seeds_429_body(refused, 62)


def test_a_client_that_waits_until_reset_succeeds_and_not_a_second_earlier(
    example: ExampleFactory,
) -> None:
    def refused_at_t0() -> tuple[ExampleApi, int]:
        api = example("scanner", T0)
        api.repeat(30, "GET", "/api/servers", ip=IP)
        refused = api.check("GET", "/api/servers", ip=IP)
        return api, int(refused.headers["X-RateLimit-Reset"])

    early, reset = refused_at_t0()
    early.at(reset - 1)
    assert early.check("GET", "/api/servers", ip=IP).status_code == 429

    patient, reset = refused_at_t0()
    patient.at(reset)
    assert patient.check("GET", "/api/servers", ip=IP).allowed


@pytest.mark.parametrize("offset", [0.25, 17.5, 42.000001, 59.999])
def test_waiting_until_reset_succeeds_from_any_instant(
    example: ExampleFactory, offset: float
) -> None:
    api = example("scanner", T0 + offset)
    api.repeat(60, "GET", "/api/servers", key=FREE)
    refused = api.check("GET", "/api/servers", key=FREE)
    retry_after, reset = api.refusal_timing(refused)
    assert_seeds_429_body(refused, retry_after)

    api.at(reset)
    assert api.check("GET", "/api/servers", key=FREE).allowed


def test_the_scan_quota_429_says_when_the_oldest_scan_leaves_the_hour(api: ExampleApi) -> None:
    api.repeat(10, "POST", "/api/scans", key=FREE)
    api.advance(600)
    api.repeat(10, "POST", "/api/scans", key=FREE)
    api.advance(600)
    refused = api.check("POST", "/api/scans", key=FREE)

    assert refused.headers == api.rate_headers(20, 0, T0 + 3600, retry_after=2400)
    assert_seeds_429_body(refused, 2400)

    api.at(T0 + 3600)  # the ten first scans leave the hour together
    scan = api.check("POST", "/api/scans", key=FREE)
    assert (scan.allowed, scan.limit, scan.remaining) == (True, 20, 9)


# path tricks


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/scans/"),
        ("POST", "/api//scans"),
        ("POST", "/api/servers/../scans"),
        ("POST", "/api/./scans"),
        ("POST", "/api/scans?priority=high"),
        ("post", "/api/scans"),
    ],
)
def test_path_and_method_spellings_of_a_scan_still_count_against_the_scan_quota(
    api: ExampleApi, method: str, path: str
) -> None:
    api.repeat(20, "POST", "/api/scans", key=FREE)
    decision = api.check(method, path, key=FREE)

    assert (decision.status_code, decision.category, decision.limit) == (429, "scans", 20)


# client IP and X-Forwarded-For


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(api: ExampleApi) -> None:
    spoofed = [
        api.check("GET", "/api/servers", ip=UNTRUSTED, headers={"X-Forwarded-For": f"10.0.0.{n}"})
        for n in range(31)
    ]

    assert {d.client_ip for d in spoofed} == {UNTRUSTED}
    assert all(d.allowed for d in spoofed[:30])
    assert spoofed[30].status_code == 429


def test_behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client(
    api: ExampleApi,
) -> None:
    # the client forges the left part; the proxy at 127.0.0.1 appends the real address
    forged = [
        api.check(
            "GET", "/api/servers", ip="127.0.0.1",
            headers={"X-Forwarded-For": f"10.0.0.{n}, 192.0.2.{n}, {IP}"},
        )
        for n in range(31)
    ]  # fmt: skip
    other = api.check("GET", "/api/servers", ip="127.0.0.1", headers={"X-Forwarded-For": OTHER_IP})

    assert {d.client_ip for d in forged} == {IP}
    assert forged[30].status_code == 429
    assert (other.client_ip, other.allowed, other.remaining) == (OTHER_IP, True, 29)


def test_a_chain_of_trusted_proxies_is_walked_back_to_the_client(api: ExampleApi) -> None:
    decision = api.check(
        "GET", "/api/servers", ip="::1", headers={"X-Forwarded-For": f"{IP}, 127.0.0.1, ::1"}
    )
    assert decision.client_ip == IP


def test_a_forwarded_header_is_not_read_behind_proxies_that_write_x_forwarded_for(
    api: ExampleApi,
) -> None:
    # the example's proxies write X-Forwarded-For; a Forwarded header is the client's own
    forged = [
        api.check(
            "GET", "/api/servers", ip="127.0.0.1",
            headers={"Forwarded": f'for="[2001:db8::{n}]:4711";proto=https'},
        )
        for n in range(31)
    ]  # fmt: skip

    assert {d.client_ip for d in forged} == {"127.0.0.1"}
    assert forged[30].status_code == 429


@pytest.mark.parametrize(
    "chain", ["not-an-address", f"{IP}, not-an-address", "", "999.1.1.1", f"{IP},,"]
)
def test_garbage_in_x_forwarded_for_is_never_taken_for_the_client(
    api: ExampleApi, chain: str
) -> None:
    decision = api.check("GET", "/api/servers", ip="127.0.0.1", headers={"X-Forwarded-For": chain})
    assert (decision.allowed, decision.client_ip) == (True, "127.0.0.1")


# async twin


REQUESTS: list[tuple[str, str, dict[str, str], float]] = [
    *[("GET", "/api/servers", {}, 0.0)] * 31,
    *[("POST", "/api/scans", {"X-API-Key": FREE}, 0.5)] * 21,
    ("GET", "/api/servers", {"X-API-Key": "nope"}, 0.0),
    ("GET", "/api/servers", {}, 62.0),
    ("POST", "/api/scans", {"Authorization": f"Bearer {ENTERPRISE}"}, 0.0),
]


def answer(decision: PolicyDecision) -> tuple[object, ...]:
    return (
        decision.allowed, decision.status_code, decision.plan, decision.category,
        decision.limit, decision.remaining, decision.reset_at, decision.retry_after,
        decision.headers, decision.body, decision.statuses,
    )  # fmt: skip


@pytest.mark.faces("limiter")
async def test_async_limiter_gives_the_same_answers_as_limiter(api: ExampleApi) -> None:
    sync_limiter = api.limiter
    async_limiter = AsyncLimiter(sync_limiter.policy, store=MemoryStore(clock=api.clock))
    assert isinstance(sync_limiter, Limiter)

    for method, path, headers, wait in REQUESTS:
        api.advance(wait)
        expected = sync_limiter.check(method=method, path=path, headers=headers, client_ip=IP)
        got = await async_limiter.check(method=method, path=path, headers=headers, client_ip=IP)
        assert answer(got) == answer(expected)

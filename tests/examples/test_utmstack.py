"""examples/utmstack.yaml: login lockout per IP and limits per user account (SEEDS.md, 4).

- ``POST /api/authenticate`` is the login; the upstream's 401 or 403 is a
  failed attempt; 5 failed attempts from one IP within 15 minutes block that
  IP's authentication requests for 15 minutes.
- General ``/api/*`` per user account (API key): admin 600/minute, user
  100/minute.
- ``/api/health``, ``/api/alerts/emergency`` and ``/api/webhooks/*`` are exempt.

A login goes through ``api.login(status)``: on the HTTP faces the upstream
checks the credentials sent and answers ``status`` (200 right password, 401
wrong one, 403 disabled account, 400 not JSON), and the middleware feeds that
status to the lockout; on the limiter face ``record_response`` does. A login
that must pass without counting as a failure is a successful one (200).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pytest

from ratekeeper import AsyncLimiter, MemoryStore, PolicyDecision

if TYPE_CHECKING:  # pytest loads conftest; importing it at run time is unreliable
    from conftest import ExampleApi, ExampleFactory

T0 = 1_700_000_040.0  # a minute boundary
BLOCK = 900  # 15 minutes

ADMIN, USER = "demo-admin", "demo-user"
ATTACKER = "192.168.1.100"
NEIGHBOUR = "192.168.1.101"
LOGIN = ("POST", "/api/authenticate")

# SEEDS.md, provider 4, verbatim
SEEDS_BLOCKED = (
    b'{"status": 429, "error": "Too Many Requests", '
    b'"message": "Authentication blocked: IP 192.168.1.100 exceeded login attempt threshold"}'
)
UNAUTHORIZED_BODY = (
    b'{"status": 401, "error": "Unauthorized", "message": "A valid API key is required"}'
)


@pytest.fixture
def api(example: ExampleFactory) -> ExampleApi:
    return example("utmstack", T0)


def fail_logins(
    api: ExampleApi, times: int, ip: str = ATTACKER, status: int = 401, every: float = 0.0
) -> list[PolicyDecision]:
    """``times`` login attempts the upstream refuses with ``status``, ``every`` s apart."""
    decisions = []
    for n in range(times):
        if n and every:
            api.advance(every)
        decision = api.login(status, ip=ip)
        assert decision.allowed
        decisions.append(decision)
    return decisions


def logs_in(api: ExampleApi, ip: str = ATTACKER) -> bool:
    """A login with the right password passes (and, passing, counts as no failure)."""
    answer = api.login(200, ip=ip)
    return bool(answer.allowed)


def assert_blocked(decision: PolicyDecision, retry_after: int) -> None:
    assert (decision.allowed, decision.status_code, decision.category) == (False, 429, "login")
    assert decision.headers == {
        "X-RateLimit-Limit": "5",  # the lockout's threshold
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(math.ceil(decision.reset_at)),  # the end of the block
        "Retry-After": str(retry_after),
    }
    assert decision.content_type == "application/json"


def test_the_seeds_body_text_is_what_json_dumps_writes() -> None:
    assert json.dumps(json.loads(SEEDS_BLOCKED)).encode() == SEEDS_BLOCKED


# login lockout


def test_five_failed_logins_from_one_ip_block_its_next_login_for_15_minutes(
    api: ExampleApi,
) -> None:
    four = fail_logins(api, 4)
    right_password = api.login(200, ip=ATTACKER)
    fifth = api.login(401, ip=ATTACKER)
    refused = api.login(200, ip=ATTACKER)  # even with the right password

    assert all(attempt.allowed for attempt in [*four, right_password, fifth])
    assert_blocked(refused, BLOCK)
    assert refused.body == SEEDS_BLOCKED
    assert refused.client_ip == ATTACKER


@pytest.mark.faces("limiter")  # record_response's answer is the limiter's API
def test_record_response_reports_the_block_the_fifth_failure_starts(api: ExampleApi) -> None:
    attempts = [api.check(*LOGIN, ip=ATTACKER) for _ in range(5)]
    blocks = [api.record(attempt, 401) for attempt in attempts]
    refused = api.check(*LOGIN, ip=ATTACKER)

    assert all(attempt.allowed for attempt in attempts)
    assert blocks[:4] == [[], [], [], []]
    [block] = blocks[4]
    assert (block.blocked, block.until, block.failures) == (True, T0 + BLOCK, 5)
    assert_blocked(refused, BLOCK)
    assert refused.body == SEEDS_BLOCKED
    assert refused.client_ip == ATTACKER


def test_403_counts_as_a_failed_login_too(api: ExampleApi) -> None:
    fail_logins(api, 3, status=403)
    fail_logins(api, 2, status=401)

    assert_blocked(api.login(200, ip=ATTACKER), BLOCK)


def test_another_ip_is_not_blocked(api: ExampleApi) -> None:
    fail_logins(api, 5, ip=ATTACKER)
    neighbour = api.login(200, ip=NEIGHBOUR)

    assert (neighbour.allowed, neighbour.status_code) == (True, 200)


def test_five_failures_within_15_minutes_block(api: ExampleApi) -> None:
    fail_logins(api, 5, every=224.75)  # the fifth comes 899 s after the first

    assert_blocked(api.login(200, ip=ATTACKER), BLOCK)


def test_failures_spread_over_more_than_15_minutes_do_not_block(api: ExampleApi) -> None:
    fail_logins(api, 5, every=226)  # the first has left the window when the fifth comes

    assert logs_in(api)


def test_successful_logins_do_not_count_as_failures(api: ExampleApi) -> None:
    fail_logins(api, 4)
    successes = [api.login(200, ip=ATTACKER) for _ in range(20)]

    assert all(success.allowed for success in successes)
    assert logs_in(api)


def test_a_successful_login_does_not_forgive_earlier_failures(api: ExampleApi) -> None:
    fail_logins(api, 4)
    assert logs_in(api)
    fail_logins(api, 1)

    assert_blocked(api.login(200, ip=ATTACKER), BLOCK)


@pytest.mark.faces("limiter")  # statuses the upstream never answers a login with
@pytest.mark.parametrize("status", [200, 204, 302, 400, 404, 429, 500, 503])
def test_other_upstream_statuses_are_not_failed_logins(api: ExampleApi, status: int) -> None:
    for _ in range(10):
        api.record(api.check(*LOGIN, ip=ATTACKER), status)

    assert api.check(*LOGIN, ip=ATTACKER).allowed


@pytest.mark.parametrize("status", [200, 400])
def test_logins_the_upstream_answers_with_200_or_400_are_not_failed_logins(
    api: ExampleApi, status: int
) -> None:
    answers = [api.login(status, ip=ATTACKER) for _ in range(10)]

    assert all(a.allowed for a in answers)  # the HTTP faces: with the upstream's status
    assert logs_in(api)


def test_retry_after_counts_down_to_the_end_of_the_block(api: ExampleApi) -> None:
    fail_logins(api, 5)
    api.advance(100.5)
    later = api.check(*LOGIN, ip=ATTACKER)
    api.at(T0 + BLOCK - 0.25)
    last_moment = api.check(*LOGIN, ip=ATTACKER)

    assert_blocked(later, 800)
    assert later.body == SEEDS_BLOCKED
    assert_blocked(last_moment, 1)


def test_login_is_allowed_again_when_the_block_ends(api: ExampleApi) -> None:
    fail_logins(api, 5)
    api.at(T0 + BLOCK - 0.001)
    assert_blocked(api.login(200, ip=ATTACKER), 1)
    api.at(T0 + BLOCK)

    assert logs_in(api)


def test_failed_attempts_refused_during_the_block_cannot_extend_it(api: ExampleApi) -> None:
    fail_logins(api, 5)
    for _ in range(10):
        api.advance(60)
        assert api.login(401, ip=ATTACKER).status_code == 429
    api.at(T0 + BLOCK)

    assert logs_in(api)


@pytest.mark.faces("limiter")  # feeds a refusal to record_response on purpose
def test_refused_decisions_fed_back_cannot_extend_the_block(api: ExampleApi) -> None:
    fail_logins(api, 5)
    for _ in range(10):
        api.advance(60)
        refused = api.check(*LOGIN, ip=ATTACKER)
        assert refused.status_code == 429
        assert api.record(refused, 401) == []
    api.at(T0 + BLOCK)

    assert api.check(*LOGIN, ip=ATTACKER).allowed


def test_after_a_block_the_count_starts_afresh_and_the_next_block_also_lasts_15_minutes(
    api: ExampleApi,
) -> None:
    fail_logins(api, 5)
    api.advance(BLOCK)
    fail_logins(api, 4)
    assert logs_in(api)

    fail_logins(api, 1)
    assert_blocked(api.login(200, ip=ATTACKER), BLOCK)


def test_the_block_covers_only_authentication_requests(api: ExampleApi) -> None:
    fail_logins(api, 5)
    general = api.check("GET", "/api/alerts", key=USER, ip=ATTACKER)

    assert (general.allowed, general.category) == (True, "api")


@pytest.mark.parametrize(
    "path", ["/api/authenticate/", "/api//authenticate", "/api/x/../authenticate"]
)
def test_spellings_of_the_login_path_are_blocked_too(api: ExampleApi, path: str) -> None:
    fail_logins(api, 5)

    assert_blocked(api.check("POST", path, ip=ATTACKER), BLOCK)


def test_a_trailing_newline_does_not_escape_the_login_block(api: ExampleApi) -> None:
    fail_logins(api, 5)

    assert_blocked(api.check("POST", "/api/authenticate\n", ip=ATTACKER), BLOCK)


def test_login_needs_no_key_ignores_an_unknown_one_and_sends_no_rate_headers(
    api: ExampleApi,
) -> None:
    anonymous = api.check(*LOGIN)
    unknown = api.check(*LOGIN, key="not-a-key")

    for decision in (anonymous, unknown):
        assert (decision.allowed, decision.plan, decision.headers) == (True, None, {})


# client IP of the lockout


def test_rotating_x_forwarded_for_does_not_escape_the_block(api: ExampleApi) -> None:
    for n in range(5):
        assert api.login(401, ip=ATTACKER, headers={"X-Forwarded-For": f"10.0.0.{n}"}).allowed
    refused = api.login(200, ip=ATTACKER, headers={"X-Forwarded-For": "10.0.0.99"})

    assert_blocked(refused, BLOCK)
    assert refused.body == SEEDS_BLOCKED


def test_behind_a_trusted_proxy_the_block_falls_on_the_forwarded_client(
    api: ExampleApi,
) -> None:
    via_proxy = {"X-Forwarded-For": f"10.9.8.7, {ATTACKER}"}
    for _ in range(5):
        assert api.login(403, ip="127.0.0.1", headers=via_proxy).allowed
    refused = api.login(200, ip="127.0.0.1", headers=via_proxy)
    neighbour = api.login(200, ip="127.0.0.1", headers={"X-Forwarded-For": NEIGHBOUR})

    assert_blocked(refused, BLOCK)
    assert refused.body == SEEDS_BLOCKED
    assert neighbour.allowed


# general API: per user account, by role


@pytest.mark.parametrize(
    ("key", "role", "per_minute"), [(ADMIN, "admin", 600), (USER, "user", 100)]
)
def test_each_role_allows_its_requests_per_minute_then_refuses(
    api: ExampleApi, key: str, role: str, per_minute: int
) -> None:
    allowed = api.repeat(per_minute, "GET", "/api/alerts", key=key)
    refused = api.check("GET", "/api/alerts", key=key)

    assert all(d.allowed and d.plan == role for d in allowed)
    assert allowed[0].headers == api.rate_headers(per_minute, per_minute - 1, T0 + 120)
    assert (refused.status_code, refused.limit) == (429, per_minute)
    retry_after, reset = api.refusal_timing(refused)
    assert refused.headers == api.rate_headers(per_minute, 0, reset, retry_after=retry_after)
    assert refused.body is not None
    assert json.loads(refused.body) == {
        "status": 429,
        "error": "Too Many Requests",
        "message": f"Rate limit exceeded: retry after {retry_after} seconds",
    }


def test_the_limit_follows_the_user_account_across_ips_and_accounts_are_separate(
    api: ExampleApi,
) -> None:
    api.repeat(50, "GET", "/api/alerts", key=USER, ip=ATTACKER)
    api.repeat(50, "GET", "/api/incidents", key=USER, ip=NEIGHBOUR)
    refused = api.check("GET", "/api/alerts", key=USER, ip="203.0.113.7")
    admin = api.check("GET", "/api/alerts", key=ADMIN, ip=ATTACKER)

    assert refused.status_code == 429
    assert (admin.allowed, admin.remaining) == (True, 599)


def test_a_bearer_token_names_the_same_account(api: ExampleApi) -> None:
    api.check("GET", "/api/alerts", key=USER)
    bearer = api.check("GET", "/api/alerts", headers={"Authorization": f"Bearer {USER}"})

    assert (bearer.plan, bearer.remaining) == ("user", 98)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "not-a-key"}, {"Authorization": "Bearer not-a-key"}],
    ids=["no-key", "unknown-key", "unknown-bearer"],
)
def test_the_general_api_without_a_known_key_gets_401(
    api: ExampleApi, headers: dict[str, str]
) -> None:
    decision = api.check("GET", "/api/alerts", headers=headers)

    assert (decision.status_code, decision.headers, decision.body) == (401, {}, UNAUTHORIZED_BODY)


def test_reports_count_against_the_api_limit_and_their_own_hourly_quota(
    api: ExampleApi,
) -> None:
    reports = api.repeat(10, "POST", "/api/reports/weekly", key=USER)
    refused = api.check("POST", "/api/reports/weekly", key=USER)
    general = api.check("GET", "/api/alerts", key=USER)

    assert all(d.allowed and d.category == "reports" for d in reports)
    assert [(s.name, s.limit, s.remaining) for s in reports[-1].statuses] == [
        ("api", 100, 90),
        ("reports", 10, 0),
    ]
    assert (refused.status_code, refused.limit) == (429, 10)
    assert (general.limit, general.remaining) == (100, 89)


# exempt endpoints


@pytest.mark.parametrize(
    ("method", "path", "category"),
    [
        ("GET", "/api/health", "health"),
        ("POST", "/api/alerts/emergency", "emergency"),
        ("POST", "/api/webhooks/github", "webhooks"),
        ("POST", "/api/webhooks/siem/events", "webhooks"),
    ],
)
def test_health_emergency_alerts_and_webhooks_are_exempt_and_uncounted(
    api: ExampleApi, method: str, path: str, category: str
) -> None:
    anonymous = api.repeat(700, method, path, ip=ATTACKER)
    keyed = api.repeat(10, method, path, key=USER)
    general = api.check("GET", "/api/alerts", key=USER)

    for decision in anonymous + keyed:
        assert (decision.allowed, decision.exempt, decision.category) == (True, True, category)
        assert (decision.headers, decision.body, decision.lockouts) == ({}, None, ())
    assert general.remaining == 99


def test_exempt_endpoints_stay_open_to_a_blocked_ip(api: ExampleApi) -> None:
    fail_logins(api, 5)

    assert api.check("GET", "/api/health", ip=ATTACKER).allowed
    assert api.check("POST", "/api/alerts/emergency", ip=ATTACKER).allowed


# the async twin records responses the same way


@pytest.mark.faces("limiter")
async def test_async_limiter_blocks_after_five_failed_logins(api: ExampleApi) -> None:
    limiter = AsyncLimiter(api.limiter.policy, store=MemoryStore(clock=api.clock))
    blocks = []
    for _ in range(5):
        attempt = await limiter.check(method="POST", path="/api/authenticate", client_ip=ATTACKER)
        blocks.append(await limiter.record_response(attempt, 401))
    refused = await limiter.check(method="POST", path="/api/authenticate", client_ip=ATTACKER)

    assert [len(found) for found in blocks] == [0, 0, 0, 0, 1]
    assert_blocked(refused, BLOCK)
    assert refused.body == SEEDS_BLOCKED

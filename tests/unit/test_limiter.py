"""The policy-driven Limiter: features the four examples do not exercise."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore
from ratekeeper.policy import policy_from_text
from support.clock import Clock

START = 1_700_000_040.0  # on a minute boundary


def make(text: str, clock: Clock | None = None) -> Limiter:
    store = MemoryStore(clock=clock or Clock(START))
    return Limiter(policy_from_text(textwrap.dedent(text), name="t"), store=store)


KEYED = """\
version: 1
name: t
limits:
  api: {by: api_key, rate: 3/minute, algorithm: fixed_window}
  trial: {by: api_key, rate: 2/minute, algorithm: fixed_window, shadow: true}
plans:
  free: {limits: {api: 3/minute}}
  gold: {limits: {api: 5/minute}}
keys:
  - {key: free-key, id: f1, plan: free}
  - {key: gold-key, id: g1, plan: gold}
  - {key: vip-key, id: v1, plan: free, limits: {api: 7/minute}}
categories:
  - {name: bulk, match: POST /api/bulk, charge: {api: 2}}
  - {name: api, match: /api/**, charge: [api, trial]}
"""


SHADOW_ONLY = """\
version: 1
name: t
limits:
  trial: {by: ip, rate: 2/minute, algorithm: fixed_window, shadow: true}
headers: {style: both}
categories:
  - {name: api, match: /api/**, charge: [trial]}
"""


def test_a_request_charged_shadow_limits_only_gets_no_rate_limit_fields() -> None:
    limiter = make(SHADOW_ONLY)
    decisions = [limiter.check(path="/api/x", client_ip="192.0.2.1") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True] * 3
    assert [d.statuses[0].remaining for d in decisions] == [1, 0, 0]  # counted all the same
    # no "X-RateLimit-Limit: 0 / Remaining: 0": that reads as a quota used up
    assert [d.headers for d in decisions] == [{}] * 3


def test_plans_and_per_key_overrides_set_the_limit() -> None:
    limiter = make(KEYED)
    limits = {
        key: limiter.check(path="/api/x", headers={"X-API-Key": key}).limit
        for key in ("free-key", "gold-key", "vip-key")
    }
    assert limits == {"free-key": 3, "gold-key": 5, "vip-key": 7}


def test_category_cost_and_request_cost_multiply() -> None:
    limiter = make(KEYED)
    headers = {"X-API-Key": "gold-key"}
    first = limiter.check(method="POST", path="/api/bulk", headers=headers)
    assert (first.allowed, first.remaining) == (True, 3)
    second = limiter.check(method="POST", path="/api/bulk", headers=headers, cost=2)
    assert (second.allowed, second.remaining) == (False, 3)
    assert limiter.check(path="/api/x", headers=headers, cost=3).remaining == 0


@pytest.mark.parametrize("cost", [0, -1, 1.5, True])
def test_bad_cost_is_refused_before_anything_is_counted(cost: object) -> None:
    limiter = make(KEYED)
    with pytest.raises(ValueError, match="cost must be a positive integer"):
        limiter.check(path="/api/x", headers={"X-API-Key": "free-key"}, cost=cost)  # type: ignore[arg-type]
    assert limiter.check(path="/api/x", headers={"X-API-Key": "free-key"}).remaining == 2


def test_shadow_limit_is_counted_and_reported_but_never_denies() -> None:
    limiter = make(KEYED)
    headers = {"X-API-Key": "gold-key"}
    decisions = [limiter.check(path="/api/x", headers=headers) for _ in range(4)]
    assert all(d.allowed for d in decisions)
    shadow = [next(s for s in d.statuses if s.shadow) for d in decisions]
    assert [s.allowed for s in shadow] == [True, True, False, False]
    assert [s.remaining for s in shadow] == [1, 0, 0, 0]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1]
    assert all(d.limit == 5 for d in decisions)  # the shadow limit is never "the tightest"


def test_unknown_key_can_be_treated_as_anonymous() -> None:
    text = KEYED + "anonymous_plan: free\nunknown_key: anonymous\n"
    limiter = make(text)
    d = limiter.check(path="/api/x", headers={"X-API-Key": "stolen"}, client_ip="192.0.2.1")
    assert (d.status_code, d.plan, d.limit) == (200, "free", 3)
    assert d.statuses[0].key == "t:api:{anon:192.0.2.1}"


def test_over_long_api_key_is_unknown_not_hashed_forever() -> None:
    limiter = make(KEYED)
    d = limiter.check(path="/api/x", headers={"X-API-Key": "x" * 10_000})
    assert d.status_code == 401


IETF = """\
version: 1
limits:
  api: {by: ip, rate: "2/second;5/minute", algorithm: fixed_window}
categories:
  - {name: api, match: /**, charge: [api]}
headers: {style: both}
"""


def test_ietf_fields_list_every_rate_with_quota_window_remaining_and_reset() -> None:
    clock = Clock(START)
    limiter = make(IETF, clock)
    clock.t = START + 10.25
    d = limiter.check(path="/x", client_ip="192.0.2.1")
    assert d.headers["RateLimit-Policy"] == '"api-1s";q=2;w=1, "api-1m";q=5;w=60'
    assert d.headers["RateLimit"] == '"api-1s";r=1;t=1, "api-1m";r=4;t=50'
    assert d.headers["X-RateLimit-Limit"] == "2"
    limiter.check(path="/x", client_ip="192.0.2.1")
    refused = limiter.check(path="/x", client_ip="192.0.2.1")
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Reset"] == str(int(START) + 11)


def test_header_style_none_sends_only_retry_after() -> None:
    limiter = make(IETF.replace("style: both", "style: none"))
    decisions = [limiter.check(path="/x", client_ip="192.0.2.1") for _ in range(3)]
    assert decisions[0].headers == {}
    assert decisions[2].headers == {"Retry-After": "1"}


def test_problem_json_style_gives_rfc9457_bodies() -> None:
    text = IETF + "docs_url: https://example.test/limits\nresponses: {style: problem}\n"
    limiter = make(text)
    for _ in range(2):
        limiter.check(path="/x", client_ip="192.0.2.1")
    refused = limiter.check(path="/x", client_ip="192.0.2.1")
    assert refused.content_type == "application/problem+json"
    assert json.loads(refused.body or b"") == {
        "type": "https://example.test/limits",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit exceeded. Retry after 1 seconds.",
        "retry_after": 1,
    }


def test_body_placeholders_render_typed_values_and_text() -> None:
    text = IETF + textwrap.dedent(
        """\
        responses:
          rate_limited:
            status: 429
            body:
              wait: "{retry_after}"
              where: "{method} {path} from {ip} ({category})"
              limit: "{limit}"
              window: "{window}"
              braces: "{{literal}}"
              list: ["{remaining}", true, null, 1.5]
        """
    )
    limiter = make(text)
    for _ in range(2):
        limiter.check(path="/x", client_ip="192.0.2.1")
    refused = limiter.check(method="post", path="/x?q=1", client_ip="192.0.2.1")
    assert json.loads(refused.body or b"") == {
        "wait": 1,
        "where": "POST /x from 192.0.2.1 (api)",
        "limit": 2,
        "window": 1,
        "braces": "{literal}",
        "list": [0, True, None, 1.5],
    }


REPORT = """\
version: 1
limits:
  api: {by: ip, rate: "3/minute;4/hour", algorithm: fixed_window}
categories:
  - {name: api, match: /**, charge: [api]}
headers: {style: x-ratelimit, report: minute}
"""


def test_report_window_pins_the_reported_limit_while_allowed() -> None:
    clock = Clock(START)
    limiter = make(REPORT, clock)
    first = [limiter.check(path="/x", client_ip="192.0.2.1") for _ in range(3)]
    assert [d.headers["X-RateLimit-Limit"] for d in first] == ["3", "3", "3"]
    assert [d.headers["X-RateLimit-Remaining"] for d in first] == ["2", "1", "0"]
    clock.t += 60
    allowed = limiter.check(path="/x", client_ip="192.0.2.1")
    assert allowed.headers["X-RateLimit-Limit"] == "3"  # hour has 0 left, minute is reported
    refused = limiter.check(path="/x", client_ip="192.0.2.1")
    # the hour refused it: its aligned window ends 2,760 s after START
    assert refused.retry_after == pytest.approx(2700)
    assert refused.headers["X-RateLimit-Limit"] == "3"  # still the minute's limit...
    assert refused.headers["X-RateLimit-Remaining"] == "0"  # ...with no room
    assert refused.headers["X-RateLimit-Reset"] == str(int(START) + 2760)  # when it can pass


PENALTY = """\
version: 1
limits:
  api: {by: ip, rate: 1/minute, algorithm: fixed_window}
categories:
  - {name: api, match: /**, charge: [api]}
penalty: {rejections: 3, window: 1 minute, block: 10 minutes, escalation: 2}
"""


def test_clients_that_ignore_429_are_blocked_then_released() -> None:
    clock = Clock(START)
    limiter = make(PENALTY, clock)
    answers = [limiter.check(path="/x", client_ip="192.0.2.1") for _ in range(5)]
    assert [d.status_code for d in answers] == [200, 429, 429, 429, 429]
    assert answers[3].retry_after == pytest.approx(60.0)  # third refusal: the rate's own wait
    assert answers[4].headers == {  # now blocked by the penalty: 3 refusals
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(START) + 600),
        "Retry-After": "600",
    }
    assert limiter.check(path="/x", client_ip="192.0.2.2").allowed  # others are untouched
    clock.t += 600
    assert limiter.check(path="/x", client_ip="192.0.2.1").allowed
    store = limiter.store
    assert isinstance(store, MemoryStore)
    assert store.lockouts.blocks() == []


def test_penalty_blocks_escalate_and_can_be_lifted() -> None:
    clock = Clock(START)
    limiter = make(PENALTY, clock)
    for _ in range(4):
        limiter.check(path="/x", client_ip="192.0.2.1")
    clock.t += 600
    for _ in range(5):
        last = limiter.check(path="/x", client_ip="192.0.2.1")
    assert last.headers["Retry-After"] == "1200"
    assert last.headers["X-RateLimit-Reset"] == str(int(START) + 600 + 1200)
    store = limiter.store
    assert isinstance(store, MemoryStore)
    (block,) = store.lockouts.blocks()
    assert block.key == "t:penalty:{192.0.2.1}"
    assert store.lockouts.unblock(block.key)
    assert (
        limiter.check(path="/x", client_ip="192.0.2.1").status_code == 429
    )  # limited, not blocked


LOGIN = """\
version: 1
limits:
  api: {by: ip, rate: 100/minute}
categories:
  - {name: api, match: /**, charge: [api]}
lockouts:
  login:
    match: POST /login
    by: ip
    threshold: 2
    window: 1 minute
    block: 30s
"""


def test_route_lockout_blocks_after_failures_on_that_route_only() -> None:
    clock = Clock(START)
    limiter = make(LOGIN, clock)
    for status in (401, 200, 403):
        d = limiter.check(method="POST", path="/login", client_ip="192.0.2.1")
        assert d.allowed
        limiter.record_response(d, status)
    blocked = limiter.check(method="POST", path="/login", client_ip="192.0.2.1")
    assert blocked.status_code == 429
    assert blocked.headers == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(START) + 30),
        "Retry-After": "30",
    }
    assert json.loads(blocked.body or b"")["error"]["message"] == (
        "Blocked after too many failed attempts from 192.0.2.1."
    )
    assert limiter.check(method="GET", path="/other", client_ip="192.0.2.1").allowed
    clock.t += 30
    assert limiter.check(method="POST", path="/login", client_ip="192.0.2.1").allowed


def test_unmatched_requests_pass_without_headers() -> None:
    limiter = make(KEYED)
    d = limiter.check(path="/elsewhere")
    assert (d.allowed, d.category, d.headers, d.body) == (True, None, {}, None)


async def test_async_limiter_answers_like_the_sync_one() -> None:
    sync = make(KEYED)
    text = textwrap.dedent(KEYED)
    asynchronous = AsyncLimiter(
        policy_from_text(text, name="t"), store=MemoryStore(clock=Clock(START))
    )
    for _ in range(5):
        expected = sync.check(path="/api/x", headers={"X-API-Key": "free-key"})
        got = await asynchronous.check(path="/api/x", headers={"X-API-Key": "free-key"})
        assert (got.status_code, got.remaining, got.headers, got.body) == (
            expected.status_code,
            expected.remaining,
            expected.headers,
            expected.body,
        )


CAPPED = """\
version: 1
name: t
limits:
  api: {by: api_key, rate: 100/minute, algorithm: fixed_window}
  small: {by: api_key, rate: 2/minute, algorithm: fixed_window}
  slots: {by: api_key, concurrency: 2, lease_ttl: 30 seconds}
  everyone: {by: global, concurrency: 3}
plans:
  free: {limits: {api: 100/minute, slots: 2}}
keys:
  - {key: k1, id: k1, plan: free}
  - {key: k2, id: k2, plan: free}
categories:
  - {name: tiny, match: /tiny, charge: [small, slots]}
  - {name: api, match: /api/**, charge: [api, slots, everyone]}
"""
CAP_HEADERS = {"X-API-Key": "k1"}


def test_check_with_lease_takes_every_cap_of_the_request_and_release_gives_them_back() -> None:
    limiter = make(CAPPED)
    leases = limiter.store.leases
    decision = limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True)
    assert decision.allowed
    assert decision.lease is not None
    assert len(decision.lease) == len(decision.concurrency)
    assert [leases.in_use(key) for key, _, _ in decision.concurrency] == [1, 1]

    limiter.release(decision)
    limiter.release(decision)  # a second release gives nothing back twice
    assert decision.lease is None
    assert [leases.in_use(key) for key, _, _ in decision.concurrency] == [0, 0]


def test_check_without_lease_only_reports_the_caps() -> None:
    limiter = make(CAPPED)
    decision = limiter.check(path="/api/x", headers=CAP_HEADERS)
    assert decision.lease is None
    assert [(cap, ttl) for _, cap, ttl in decision.concurrency] == [
        (2, 30.0),
        (3, 60.0),
    ]  # default ttl: 1 minute
    assert all(limiter.store.leases.in_use(key) == 0 for key, _, _ in decision.concurrency)


def test_over_a_cap_the_request_is_refused_before_any_rate_is_charged() -> None:
    limiter = make(CAPPED)
    held = [limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True) for _ in range(2)]
    refused = [limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True) for _ in range(5)]

    assert {(d.status_code, d.limit, d.retry_after) for d in refused} == {(429, 2, 1.0)}
    assert refused[0].headers == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(START) + 1),
        "Retry-After": "1",
    }
    assert json.loads(refused[0].body or b"") == {
        "error": {
            "code": "rate_limited",
            "message": "Rate limit exceeded. Retry after 1 seconds.",
            "retry_after": 1,
        }
    }
    assert all(d.lease is None for d in refused)
    global_key = held[0].concurrency[1][0]
    assert limiter.store.leases.in_use(global_key) == 2  # the global slot taken first came back
    for decision in held:
        limiter.release(decision)
    after = limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True)
    assert after.remaining == 97  # 100 - the 2 held - this one: the refused took nothing


def test_a_full_later_cap_gives_back_the_leases_taken_before_it() -> None:
    limiter = make(CAPPED)
    others = [limiter.check(path="/api/x", headers={"X-API-Key": "k2"}, lease=True)]
    others += [limiter.check(path="/api/x", headers={"X-API-Key": "k2"}, lease=True)]
    others += [limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True)]
    refused = limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True)  # global cap: 3

    assert (refused.status_code, refused.limit) == (429, 3)
    key_slot = others[-1].concurrency[0][0]
    assert limiter.store.leases.in_use(key_slot) == 1  # only the held request's


def test_a_request_refused_by_a_rate_holds_no_slot() -> None:
    limiter = make(CAPPED)
    for _ in range(2):
        limiter.release(limiter.check(path="/tiny", headers=CAP_HEADERS, lease=True))
    refused = limiter.check(path="/tiny", headers=CAP_HEADERS, lease=True)

    assert (refused.status_code, refused.lease) == (429, None)
    assert limiter.store.leases.in_use(refused.concurrency[0][0]) == 0


def test_over_concurrency_reports_the_policy_s_report_window_when_it_has_one() -> None:
    limiter = make(CAPPED.replace("categories:", "headers: {report: minute}\ncategories:"))
    decision = limiter.check(path="/api/x", headers=CAP_HEADERS)
    refusal = limiter.over_concurrency(decision, 2)

    assert refusal.headers == {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(START) + 1),
        "Retry-After": "1",
    }
    assert (refusal.status_code, refusal.allowed, refusal.category) == (429, False, "api")


async def test_async_check_with_lease_is_all_or_nothing_too() -> None:
    store = MemoryStore(clock=Clock(START))
    limiter = AsyncLimiter(policy_from_text(CAPPED, name="t"), store=store)
    held = [await limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True) for _ in range(2)]
    refused = await limiter.check(path="/api/x", headers=CAP_HEADERS, lease=True)
    assert (refused.status_code, refused.lease) == (429, None)
    for decision in held:
        await limiter.release(decision)
    assert all(store.leases.in_use(key) == 0 for key, _, _ in held[0].concurrency)
    assert (await limiter.check(path="/api/x", headers=CAP_HEADERS)).remaining == 97


def test_raw_headers_are_the_headers_as_lower_case_bytes() -> None:
    limiter = make(KEYED.replace("categories:", "headers: both\ncategories:"))
    for _ in range(4):
        decision = limiter.check(path="/api/x", headers={"X-API-Key": "free-key"})
    fresh = limiter.check(path="/api/x", headers={"X-API-Key": "gold-key"})

    for d in (decision, fresh):
        expected = [(k.lower().encode(), v.encode()) for k, v in d.headers.items()]
        assert limiter.raw_headers(d) == expected
    assert limiter.raw_headers(limiter.check(path="/elsewhere")) == []


def test_a_policy_is_compiled_once_however_many_limiters_use_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ratekeeper.integrations.asgi import RateLimitMiddleware
    from ratekeeper.policy import compiler, load_policy

    made: list[object] = []
    original = compiler.CompiledPolicy.__init__

    def counting(self: compiler.CompiledPolicy, policy: object) -> None:
        made.append(policy)
        original(self, policy)  # type: ignore[arg-type]

    monkeypatch.setattr(compiler.CompiledPolicy, "__init__", counting)
    file = tmp_path / "t.yaml"
    file.write_text(textwrap.dedent(KEYED))

    policy = load_policy(file)  # validated and compiled to check it
    limiter = Limiter(policy)
    RateLimitMiddleware(lambda *_: None, limiter=limiter)  # rebuilt as its async twin

    assert len(made) == 1
    assert limiter.compiled is RateLimitMiddleware(lambda *_: None, policy=policy).limiter.compiled

"""Lanes answer exactly what ``check`` answers, and exist only where they can.

A lane (``ratekeeper.engine._lanes``) decides a request from its route and client IP
alone. These tests run the same traffic through a lane and through ``check``
on two stores with the same fake clock and compare everything a caller or a
client can see; then they list what keeps a route off the lanes; then they
drive the ASGI middleware with and without lanes and compare the wire.
"""

from __future__ import annotations

from typing import Any

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore
from ratekeeper.engine import Lane
from ratekeeper.http.answers import merge_raw
from ratekeeper.integrations.asgi import RateLimitMiddleware
from ratekeeper.policy.router import MEMO_PATH, MEMO_SIZE
from ratekeeper.stores.base import ChargeResult, LimitSpec
from support.clock import Clock
from support.policies import IP_ONLY, answer, policy

T0 = 1_728_000.0


LANED = [
    pytest.param(IP_ONLY, id="sliding-window"),
    pytest.param(IP_ONLY + "headers: {style: none}\n", id="no-headers"),
    pytest.param(IP_ONLY + "headers: {style: x-ratelimit, report: minute}\n", id="report-minute"),
    pytest.param(IP_ONLY.replace("3/minute}", "3/minute, algorithm: token_bucket}"), id="bucket"),
    pytest.param(IP_ONLY.replace("3/minute}", "3/minute, algorithm: fixed_window}"), id="fixed"),
    pytest.param(IP_ONLY.replace("3/minute}", "3/minute, algorithm: sliding_log}"), id="log"),
    pytest.param(IP_ONLY.replace("3/minute", "5/minute").replace("[api]", "{api: 2}"), id="units"),
]
#: (seconds since T0, client, path as requested): repeats run into the limit, time frees it
TRAFFIC = [
    *((0.0, "203.0.113.7", "/api/x") for _ in range(5)),
    (1.0, "198.51.100.2", "/api/y"),
    (1.0, "198.51.100.2", "/api//y/"),
    (20.5, "203.0.113.7", "/api/x"),
    (61.0, "203.0.113.7", "/api/./x"),
    (61.0, "203.0.113.7", "/api/x"),
    (75.25, "203.0.113.7", "/api/x"),
    (130.0, "198.51.100.2", "/api/y"),
]


def through_lanes(limiter: Limiter, clock: Clock) -> list[tuple[Any, ...]]:
    answers = []
    for offset, ip, path in TRAFFIC:
        clock.t = T0 + offset
        lane = limiter.lane("get", path)
        assert lane is not None
        result = lane.admit(ip)
        decision = lane.decision(ip, result)
        if result[0]:
            assert lane.raw_headers(result) == limiter.raw_headers(decision)
        answers.append(answer(limiter, decision))
    return answers


def through_check(limiter: Limiter, clock: Clock) -> list[tuple[Any, ...]]:
    answers = []
    for offset, ip, path in TRAFFIC:
        clock.t = T0 + offset
        decision = limiter.check(method="get", path=path, client_ip=ip, lease=True)
        answers.append(answer(limiter, decision))
    return answers


@pytest.mark.parametrize("text", LANED)
def test_a_lane_answers_what_check_answers(text: str) -> None:
    lane_clock, check_clock = Clock(T0), Clock(T0)
    laned = Limiter(policy(text), MemoryStore(clock=lane_clock))
    checked = Limiter(policy(text), MemoryStore(clock=check_clock))

    got = through_lanes(laned, lane_clock)

    assert got == through_check(checked, check_clock)
    assert [allowed for allowed, *_ in got].count(False) >= 2  # the limit was reached


def test_a_lane_counts_in_the_counters_check_counts_in() -> None:
    clock = Clock(T0)
    limiter = Limiter(policy(IP_ONLY), MemoryStore(clock=clock))
    lane = limiter.lane("GET", "/api/x")
    assert lane is not None

    assert lane.admit("203.0.113.7")[:2] == (True, 2)
    after_check = limiter.check(path="/api/other", client_ip="203.0.113.7")
    assert (after_check.allowed, after_check.remaining) == (True, 1)
    assert lane.admit("203.0.113.7")[:2] == (True, 0)
    assert lane.admit("203.0.113.7")[0] is False
    assert lane.admit("2001:db8::1")[:2] == (True, 2)


def test_no_lane_while_a_refusal_is_remembered() -> None:
    clock = Clock(T0)
    limiter = Limiter(policy(IP_ONLY), MemoryStore(clock=clock), remember_refusals=True)
    assert limiter.lane("GET", "/api/x") is not None
    for _ in range(4):
        limiter.check(path="/api/x", client_ip="203.0.113.7")

    assert limiter.lane("GET", "/api/x") is None  # check answers from what it remembers
    clock.t = T0 + 130
    limiter.check(path="/api/x", client_ip="203.0.113.7")  # the remembered refusal ran out
    assert limiter.lane("GET", "/api/x") is not None


class _OwnAsyncStep(MemoryStore):
    """A store whose async single-charge step is its own (it could wait on I/O)."""

    never_waits = False  # declared, as a store that waits on I/O declares it

    async def apply_one_async(self, spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        return self.apply_one(spec, key, cost)


KEYED = """\
version: 1
identity: {api_key_headers: [X-API-Key]}
limits:
  api: {by: api_key, rate: 3/minute}
plans: {free: {limits: {api: 3/minute}}}
keys: [{key: k1, id: one, plan: free}]
categories:
  - {name: api, match: /api/**, charge: [api]}
"""
LOCKOUT = (
    IP_ONLY
    + """\
lockouts:
  login: {categories: [api], failure_status: [401], by: ip, threshold: 3, window: 1 minute,
          block: 1 minute}
"""
)


@pytest.mark.parametrize(
    ("text", "method", "path"),
    [
        pytest.param(IP_ONLY, "GET", "/api/health", id="exempt"),
        pytest.param(IP_ONLY, "GET", "/elsewhere", id="no-category"),
        pytest.param(IP_ONLY + "headers: {style: ietf}\n", "GET", "/api/x", id="ietf-fields"),
        pytest.param(IP_ONLY + "headers: {style: both}\n", "GET", "/api/x", id="both-fields"),
        pytest.param(KEYED, "GET", "/api/x", id="identified"),
        pytest.param(
            IP_ONLY.replace("3/minute}", '"3/minute;5/hour"}'), "GET", "/api/x", id="two-rates"
        ),
        pytest.param(
            IP_ONLY.replace("3/minute}", "3/minute, shadow: true}"), "GET", "/api/x", id="shadow"
        ),
        pytest.param(
            IP_ONLY.replace("limits:", "limits:\n  cap: {by: ip, concurrency: 2}").replace(
                "[api]", "[api, cap]"
            ),
            "GET",
            "/api/x",
            id="concurrency",
        ),
        pytest.param(LOCKOUT, "GET", "/api/x", id="lockout"),
        pytest.param(
            IP_ONLY + "penalty: {rejections: 5, window: 1 minute, block: 1 minute}\n",
            "GET",
            "/api/x",
            id="penalty",
        ),
    ],
)
def test_no_lane_where_check_has_more_to_do(text: str, method: str, path: str) -> None:
    limiter = Limiter(policy(text), MemoryStore(clock=Clock(T0)))
    assert limiter.lane(method, path) is None


def test_no_lane_on_a_store_whose_async_step_is_its_own() -> None:
    assert AsyncLimiter(policy(IP_ONLY), _OwnAsyncStep()).lane("GET", "/api/x") is None
    assert AsyncLimiter(policy(IP_ONLY), MemoryStore()).lane("GET", "/api/x") is not None


def test_the_lane_memo_stays_within_its_size_and_keeps_no_long_path() -> None:
    limiter = Limiter(policy(IP_ONLY), MemoryStore(clock=Clock(T0)))
    for n in range(MEMO_SIZE + 10):
        assert limiter.lane("GET", f"/api/{n}") is not None
        assert len(limiter._lanes.answers) <= MEMO_SIZE
    long_path = "/api/" + "x" * MEMO_PATH
    lane = limiter.lane("GET", long_path)
    assert lane is not None
    assert lane.path == long_path
    assert ("GET", long_path) not in limiter._lanes.answers


# the ASGI middleware, with and without lanes


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def wire(middleware: RateLimitMiddleware, clock: Clock, scopes: list[Any]) -> list[Any]:
    """Every message the middleware sends for each request, in order."""
    messages: list[Any] = []

    async def keep(message: Any) -> None:
        messages.append(message)

    for offset, scope in scopes:
        clock.t = T0 + offset
        await middleware(dict(scope), None, keep)
    return messages


def scope_of(client: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": headers or [],
        "client": (client, 5000),
    }


PROXIED = IP_ONLY.replace("limits:", "identity: {trusted_proxies: [10.0.0.0/8]}\nlimits:")
FORWARDED = [(b"x-forwarded-for", b"203.0.113.9")]
SCOPES = [
    *((0.0, scope_of("203.0.113.7", "/api/x")) for _ in range(4)),
    (0.0, scope_of("203.0.113.7", "/api/health")),
    *((5.0, scope_of("10.0.0.1", "/api/x", FORWARDED)) for _ in range(4)),  # the proxy's client
    *((5.0, scope_of("198.51.100.2", "/api/x", FORWARDED)) for _ in range(2)),  # not a proxy
    (61.5, scope_of("203.0.113.7", "/api/x")),
]


@pytest.mark.parametrize("text", [IP_ONLY, PROXIED], ids=["direct", "behind-proxies"])
async def test_the_middleware_answers_the_same_on_and_off_the_lanes(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane_clock, check_clock = Clock(T0), Clock(T0)
    laned = RateLimitMiddleware(_app, policy=policy(text), store=MemoryStore(clock=lane_clock))
    checked = RateLimitMiddleware(_app, policy=policy(text), store=MemoryStore(clock=check_clock))
    checked.limiter._lanes_open = False  # every request the general way
    taken: list[str] = []
    admit = Lane.admit

    def counting_admit(lane: Lane, ip: str) -> ChargeResult:
        taken.append(ip)
        return admit(lane, ip)

    monkeypatch.setattr(Lane, "admit", counting_admit)

    got = await wire(laned, lane_clock, SCOPES)

    assert got == await wire(checked, check_clock, SCOPES)
    assert [m["status"] for m in got if m["type"] == "http.response.start"].count(429) >= 3
    assert len(taken) == len(SCOPES) - 1  # all but the exempt one took the lane
    if text == PROXIED:  # the proxy's client is counted by its own address
        assert taken[4:8] == ["203.0.113.9"] * 4
        assert taken[8:10] == ["198.51.100.2"] * 2


def test_headers_the_app_set_itself_stay_the_apps_whatever_iterable_they_come_in() -> None:
    ours = [(b"x-ratelimit-limit", b"3"), (b"x-ratelimit-remaining", b"2")]
    app_headers = [(b"content-type", b"text/plain"), (b"x-ratelimit-limit", b"99")]

    merged = merge_raw(iter(app_headers), ours)

    assert merged == [*app_headers, (b"x-ratelimit-remaining", b"2")]
    assert merge_raw((pair for pair in app_headers[:1]), ours) == [app_headers[0], *ours]
    assert merge_raw(None, ours) is ours


#: IPv6 clients by their /64, IPv4 per address, and an exempt monitoring network
NETWORKED = IP_ONLY.replace(
    "limits:", "identity: {networks: [{cidr: [10.0.0.0/8, 'fd00::/8'], exempt: true}]}\nlimits:"
)
#: (client, answered by the app untouched): a /64 rotated through, a mapped IPv4, monitoring
CLIENTS = [
    *((f"2001:db8:1:2::{n:x}", False) for n in range(1, 6)),
    ("2001:db8:1:3::1", False),
    *(("::ffff:203.0.113.7", False) for _ in range(2)),
    *(("203.0.113.7", False) for _ in range(2)),
    *(("10.1.2.3", True) for _ in range(5)),
    *(("fd00::7", True) for _ in range(5)),
]


def test_a_lane_counts_clients_by_network_and_lets_exempt_networks_through_as_check_does() -> None:
    lane_clock, check_clock = Clock(T0), Clock(T0)
    laned = Limiter(policy(NETWORKED), MemoryStore(clock=lane_clock))
    checked = Limiter(policy(NETWORKED), MemoryStore(clock=check_clock))
    lane = laned.lane("GET", "/api/x")
    assert lane is not None

    admitted = []
    for ip, exempt in CLIENTS:
        result = lane.admit(ip)
        decision = checked.check(path="/api/x", client_ip=ip, lease=True)
        if exempt:
            assert result is None
            assert (decision.exempt, decision.headers) == (True, {})
        else:
            assert result is not None
            assert answer(laned, lane.decision(ip, result)) == answer(checked, decision)
            admitted.append(result[0])

    # 3 a minute: the /64 and the two spellings of 203.0.113.7 each ran into the limit
    assert admitted == [True] * 3 + [False] * 2 + [True] + [True] * 3 + [False]

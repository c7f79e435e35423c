"""The request path's shortcuts answer exactly what the long way answers.

The middleware's hot path skips work that cannot change the answer: headers
the policy never reads, routing a path already routed, the batch store call
for a single charge, building header strings it would only encode again.
Each test here pins one shortcut against the general path it replaces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ratekeeper import AsyncLimiter, Limiter, MemoryStore, PolicyDecision
from ratekeeper.engine import Charger, Prepared
from ratekeeper.identity import LoweredHeaders, lower_headers
from ratekeeper.integrations.asgi import RateLimitMiddleware
from ratekeeper.policy.compiler import compile_policy
from ratekeeper.policy.patterns import normalize_path
from ratekeeper.policy.router import RouteMemo
from ratekeeper.stores.base import ChargeResult, LimitSpec, Step, StepResult
from support.clock import Clock
from support.policies import IP_ONLY, answer, policy

T0 = 1_728_000.0


# wanted headers: only what the policy reads


def wanted(text: str) -> frozenset[str]:
    return compile_policy(policy(text)).wanted_headers


def test_a_policy_counting_by_ip_alone_reads_no_request_header() -> None:
    assert wanted(IP_ONLY) == frozenset()


def test_identifying_callers_reads_the_key_headers_and_authorization_for_bearer() -> None:
    keyed = """\
    version: 1
    identity: {api_key_headers: [X-API-Key, X-Token]}
    limits:
      api: {by: api_key, rate: 3/minute}
    categories:
      - {name: api, match: /api/**, charge: [api]}
    """
    assert wanted(keyed) == {"x-api-key", "x-token", "authorization"}
    no_bearer = keyed.replace("X-Token]}", "X-Token], bearer: false}")
    assert wanted(no_bearer) == {"x-api-key", "x-token"}


def test_forwarding_headers_are_read_only_behind_trusted_proxies() -> None:
    proxied = IP_ONLY.replace("limits:", "identity: {trusted_proxies: [10.0.0.0/8]}\nlimits:")
    # only the header the proxies write: the others are the client's to forge
    assert wanted(proxied) == {"x-forwarded-for"}


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_only_the_forwarding_header_the_proxies_write_is_read(header: str) -> None:
    identity = f"identity: {{trusted_proxies: [10.0.0.0/8], forwarded_header: {header}}}"
    assert wanted(IP_ONLY.replace("limits:", identity + "\nlimits:")) == {header.lower()}


def test_headers_a_charged_limit_a_lockout_or_the_penalty_counts_by_are_read() -> None:
    text = """\
    version: 1
    identity: {node_header: X-Node, user_header: X-User}
    limits:
      nodes: {by: node, rate: 3/minute}
      tenants: {by: "header:X-Tenant", rate: 3/minute}
      unused: {by: "header:X-Unused", rate: 3/minute}
    categories:
      - {name: login, match: POST /login, charge: [nodes]}
      - {name: api, match: /api/**, charge: [tenants]}
    lockouts:
      login:
        categories: [login]
        failure_status: [401]
        by: "header:X-Login"
        threshold: 3
        window: 1 minute
        block: 1 minute
    penalty: {rejections: 5, window: 1 minute, block: 1 minute, by: user}
    """
    # X-Unused belongs to a limit no category charges: nothing reads it. Limits
    # by node or header require a key by default, hence the key headers
    counted = {"x-node", "x-tenant", "x-login", "x-user"}
    assert wanted(text) == {*counted, "x-api-key", "authorization"}


async def test_the_middleware_never_touches_headers_the_policy_does_not_read() -> None:
    class Untouchable:
        def __iter__(self) -> Iterator[Any]:
            raise AssertionError("the request headers were read")

    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def keep(message: Any) -> None:
        sent.append(message)

    middleware = RateLimitMiddleware(app, policy=policy(IP_ONLY), store=MemoryStore())
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/x",
        "headers": Untouchable(),
        "client": ("203.0.113.7", 5000),
    }
    await middleware(scope, None, keep)

    assert (b"x-ratelimit-remaining", b"2") in sent[0]["headers"]


# the route memo


ROUTES = """\
version: 1
limits:
  api: {by: ip, rate: 3/minute}
categories:
  - {name: health, match: GET /api/health, exempt: true}
  - {name: scans, match: POST /api/scans, charge: [api]}
  - {name: metrics, match: "GET|HEAD /agents/{node}/metrics", charge: [api]}
  - {name: pcap, match: /files/*.pcap, charge: [api]}
  - {name: api, match: /api/**, charge: [api]}
"""
REQUESTS = [
    ("GET", "/api/health"),
    ("get", "/api/health"),
    ("POST", "/api/health"),
    ("POST", "/api/scans"),
    ("post", "/api//scans/"),
    ("POST", "/api/x/../scans?dry=1"),
    ("GET", "/api/scans"),
    ("GET", "/agents/edge-1/metrics"),
    ("HEAD", "/agents/edge-2/metrics/"),
    ("POST", "/agents/edge-1/metrics"),
    ("GET", "/files/dump.pcap"),
    ("GET", "/files/a/dump.pcap"),
    ("GET", "/api"),
    ("GET", "/api/\x00x"),
    ("GET", "/elsewhere"),
    ("GET", ""),
    ("GET", "/agents/" + "n" * 600 + "/metrics"),
]


@pytest.mark.parametrize("size", [1, 4, 1024])
def test_the_route_memo_answers_what_routing_the_request_again_answers(size: int) -> None:
    router = compile_policy(policy(ROUTES)).router
    memo = RouteMemo(router, size=size)
    for _ in range(3):
        for method, path in REQUESTS:
            upper, normalized = method.upper(), normalize_path(path)
            assert memo.route(method, path) == (upper, normalized, router.match(upper, normalized))


def test_the_route_memo_stays_within_its_size_and_keeps_no_long_path() -> None:
    memo = RouteMemo(compile_policy(policy(ROUTES)).router, size=8)
    for index in range(100):
        memo.route("GET", f"/agents/node-{index}/metrics")
        assert len(memo.answers) <= 8
    memo.route("GET", "/agents/" + "n" * 600 + "/metrics")
    assert all(len(path) <= 512 for _, path in memo.answers)


# one charge straight to store.apply_one, and its headers from the numbers


class _CountingStore(MemoryStore):
    """A memory store that counts its general steps (``apply``, ``decide``) and, from outside
    them, ``apply_one``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches = 0
        self.singles = 0
        self._in_batch = False

    def apply(self, charges: Any, consume: bool = True) -> tuple[bool, list[ChargeResult]]:
        return self._batch(super().apply, charges, consume)

    def decide(self, step: Step) -> StepResult:
        """The store's own whole step is the general way too (one call, as ``apply`` was)."""
        return self._batch(super().decide, step)

    def _batch(self, call: Any, *args: Any) -> Any:
        outer = not self._in_batch
        self.batches += outer
        self._in_batch = True
        try:
            return call(*args)
        finally:
            self._in_batch = not outer

    def apply_one(self, spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        self.singles += not self._in_batch
        return super().apply_one(spec, key, cost)


class _GeneralLimiter(Limiter):
    """A limiter that never takes the one-charge path: the reference."""

    def prepare(self, *args: Any, **kwargs: Any) -> Prepared | PolicyDecision:
        prepared = super().prepare(*args, **kwargs)
        if isinstance(prepared, Prepared):
            prepared.one = None
        return prepared


class _GeneralAsyncLimiter(AsyncLimiter):
    def prepare(self, *args: Any, **kwargs: Any) -> Prepared | PolicyDecision:
        prepared = super().prepare(*args, **kwargs)
        if isinstance(prepared, Prepared):
            prepared.one = None
        return prepared


class _FlowLimiter(Limiter):
    """A limiter that takes the decision flow for every request: a store step, run."""

    def prepare(self, *args: Any, **kwargs: Any) -> Prepared | PolicyDecision:
        prepared = super().prepare(*args, **kwargs)
        if isinstance(prepared, Prepared):
            prepared.plain = False
        return prepared


def with_headers(style: str, report: str = "tightest") -> str:
    return IP_ONLY + f"headers: {{style: {style}, report: {report}}}\n"


ONE_CHARGE = [
    pytest.param(with_headers("x-ratelimit"), id="x-ratelimit"),
    pytest.param(with_headers("ietf"), id="ietf"),
    pytest.param(with_headers("both"), id="both"),
    pytest.param(with_headers("none"), id="none"),
    pytest.param(with_headers("x-ratelimit", "minute"), id="report-minute"),
    pytest.param(with_headers("x-ratelimit", "hour"), id="report-other-window"),
    pytest.param(IP_ONLY.replace("3/minute}", "3/minute, algorithm: token_bucket}"), id="bucket"),
    pytest.param(IP_ONLY.replace("3/minute}", "3/minute, algorithm: fixed_window}"), id="fixed"),
    pytest.param(IP_ONLY.replace("3/minute}", "3/minute, algorithm: sliding_log}"), id="log"),
    pytest.param(
        IP_ONLY.replace("by: ip, rate: 3/minute", "by: api_key")
        + "plans: {free: {limits: {api: 3/minute}}}\n"
        + "keys: [{key: k1, id: one, plan: free}, {key: k2, id: two, plan: free}]\n",
        id="keyed",
    ),
]
#: (seconds since T0, client, API key): repeats run into the limit, time frees it
TRAFFIC = [
    *((0.0, "203.0.113.7", "k1") for _ in range(5)),
    (1.0, "198.51.100.2", "k2"),
    (1.0, "198.51.100.2", "k2"),
    (20.0, "203.0.113.7", "k1"),
    (61.0, "203.0.113.7", "k1"),
    (61.0, "203.0.113.7", "k1"),
    (130.0, "198.51.100.2", "k2"),
]


def run(limiter: Limiter, clock: Clock) -> list[tuple[Any, ...]]:
    answers = []
    for offset, ip, key in TRAFFIC:
        clock.t = T0 + offset
        for path in ("/api/x", "/api/health"):
            decision = limiter.check(path=path, headers={"X-API-Key": key}, client_ip=ip)
            answers.append(answer(limiter, decision))
    return answers


@pytest.mark.parametrize("text", ONE_CHARGE)
@pytest.mark.parametrize("remember", [False, True])
def test_a_single_charge_answers_as_the_batch_path_answers(text: str, remember: bool) -> None:
    fast_clock, slow_clock = Clock(T0), Clock(T0)
    fast_store = _CountingStore(clock=fast_clock)
    fast = Limiter(policy(text), fast_store, remember_refusals=remember)
    slow = _GeneralLimiter(policy(text), MemoryStore(clock=slow_clock), remember_refusals=remember)

    assert run(fast, fast_clock) == run(slow, slow_clock)
    assert fast_store.batches == 0
    if remember:  # some refusals were answered from memory, without the store
        assert 0 < fast_store.singles < len(TRAFFIC)
    else:
        assert fast_store.singles == len(TRAFFIC)


@pytest.mark.parametrize("text", ONE_CHARGE)
@pytest.mark.parametrize("remember", [False, True])
def test_charges_alone_answer_as_the_decision_flow_answers(text: str, remember: bool) -> None:
    short_clock, flow_clock = Clock(T0), Clock(T0)
    short = Limiter(policy(text), MemoryStore(clock=short_clock), remember_refusals=remember)
    flow = _FlowLimiter(policy(text), MemoryStore(clock=flow_clock), remember_refusals=remember)

    assert run(short, short_clock) == run(flow, flow_clock)


@pytest.mark.parametrize("text", ONE_CHARGE)
def test_the_async_single_charge_answers_as_the_batch_path_answers(text: str) -> None:
    async def answers(limiter: AsyncLimiter, clock: Clock) -> list[tuple[Any, ...]]:
        found = []
        for offset, ip, key in TRAFFIC:
            clock.t = T0 + offset
            decision = await limiter.check(
                path="/api/x", headers={"X-API-Key": key}, client_ip=ip, lease=True
            )
            found.append(answer(limiter, decision))
        return found

    fast_clock, slow_clock = Clock(T0), Clock(T0)
    fast = AsyncLimiter(policy(text), MemoryStore(clock=fast_clock))
    slow = _GeneralAsyncLimiter(policy(text), MemoryStore(clock=slow_clock))

    assert asyncio.run(answers(fast, fast_clock)) == asyncio.run(answers(slow, slow_clock))


@pytest.mark.parametrize("text", ONE_CHARGE)
def test_header_bytes_written_from_the_numbers_are_the_header_fields_encoded(text: str) -> None:
    clock = Clock(T0)
    limiter = Limiter(policy(text), MemoryStore(clock=clock))
    for _ in range(4):
        decision = limiter.check(path="/api/x", headers={"X-API-Key": "k1"}, client_ip="192.0.2.1")
        raw = limiter.raw_headers(decision)
        assert raw == [
            (name.lower().encode(), value.encode()) for name, value in decision.headers.items()
        ]


CAPPED = """\
version: 1
limits:
  api: {by: ip, rate: 3/minute}
  cap: {by: ip, concurrency: 2}
categories:
  - {name: api, match: /api/**, charge: [api, cap], require_key: false}
"""


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(IP_ONLY.replace("3/minute}", "3/minute, shadow: true}"), id="shadow"),
        pytest.param(IP_ONLY.replace("3/minute}", '"3/minute;5/hour"}'), id="two-rates"),
        pytest.param(CAPPED, id="concurrency"),
    ],
)
def test_anything_but_one_plain_charge_goes_the_batch_way(text: str) -> None:
    store = _CountingStore(clock=Clock(T0))
    limiter = Limiter(policy(text), store)

    limiter.check(path="/api/x", client_ip="192.0.2.1", lease=True)

    assert (store.batches, store.singles) == (1, 0)


# charges counted by IP alone


@pytest.mark.parametrize(("rate", "cost"), [("3/minute", 1), ("3/minute", 2), ('"3/m;9/h"', 1)])
def test_counter_keys_by_ip_are_the_keys_identity_builds(rate: str, cost: int) -> None:
    compiled = compile_policy(policy(IP_ONLY.replace("3/minute", rate)))
    category = next(category for category in compiled.categories if category.name == "api")
    charger = Charger(compiled.identifier)
    charge_plan = charger.plan(category, None, None)
    ip = "2001:db8::7"

    charges = charger.charges(charge_plan, None, None, ip, {}, {}, cost)

    key = "t:api:" + compiled.identifier.tag(("ip",), None, None, ip, {}, {})
    assert key == "t:api:{2001:db8::7}"
    specs = category.rate_charges[0].default_specs
    assert specs is not None
    assert list(charges) == [(spec, key, cost, False) for spec in specs]


# headers the middleware already reduced


def test_headers_the_middleware_reduced_are_not_lowered_again() -> None:
    reduced = LoweredHeaders({"x-api-key": "k1"})
    assert lower_headers(reduced, frozenset({"x-api-key"})) is reduced
    plain = {"X-API-Key": "k1", "X-Other": "x"}
    assert lower_headers(plain, frozenset({"x-api-key"})) == reduced


def test_a_caller_behind_a_trusted_proxy_is_identified_from_reduced_headers() -> None:
    text = IP_ONLY.replace("limits:", "identity: {trusted_proxies: [10.0.0.0/8]}\nlimits:")
    limiter = Limiter(policy(text), MemoryStore(clock=Clock(T0)))
    headers = LoweredHeaders({"x-forwarded-for": "203.0.113.9"})

    decision = limiter.check(path="/api/x", headers=headers, client_ip="10.0.0.1")

    assert decision.client_ip == "203.0.113.9"

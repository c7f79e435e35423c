"""Through the ASGI middleware: who the client is, whatever it sends to look like someone else.

A client must not be able to pick the address it is counted by: the forwarding
header read is the one the policy's proxies write, and nothing else; an IPv6
client is counted by its /64, whichever address of it each request comes from.
The policy's networks are exempt or give their keyless callers a plan, matched
against the client found behind the proxies. The memory store takes the lanes
(``ratekeeper.engine._lanes``), Redis the general path: both are run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from webtools import asgi_client, make_policy

import ratekeeper
from ratekeeper import MemoryStore, Store
from ratekeeper.integrations.asgi import RateLimitMiddleware
from ratekeeper.stores import RedisStore
from support.clock import Clock

PROXY = "127.0.0.1"
CLIENT = "203.0.113.7"
ONE_64 = [f"2001:db8:1:2::{n:x}" for n in range(1, 101)]  # 100 addresses of one /64
OTHER_64 = "2001:db8:1:3::1"

#: 10 per minute per client IP behind a loopback proxy; {forwarded_header} is filled in
PROXIED = """\
version: 1
identity:
  trusted_proxies: [127.0.0.1/32, "::1/128"]
  forwarded_header: {header}
limits:
  api: {{by: ip, rate: 10/minute, algorithm: fixed_window}}
categories:
  - {{name: api, match: /api/**, charge: [api]}}
responses:
  rate_limited: {{status: 429, body: {{ip: "{{ip}}"}}}}
"""


#: 10 per minute per client IP, no proxies; {extra} adds a lockout or the penalty
PER_IP = """\
version: 1
limits:
  api: {{by: ip, rate: 10/minute, algorithm: fixed_window}}
categories:
  - {{name: api, match: /api/**, charge: [api]}}
  - {{name: login, match: POST /login, charge: [api]}}
responses:
  rate_limited: {{status: 429, body: {{ip: "{{ip}}"}}}}
{extra}"""


def memory_store(request: pytest.FixtureRequest, clock: Clock) -> Store:
    return MemoryStore(clock=clock)


def redis_store(request: pytest.FixtureRequest, clock: Clock) -> Store:
    return RedisStore.from_url(request.getfixturevalue("redis_url"), clock=clock, timeout=2.0)


@pytest.fixture(
    params=[
        pytest.param(memory_store, id="memory"),
        pytest.param(redis_store, id="redis", marks=pytest.mark.redis),
    ]
)
async def any_store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Store]:
    """The memory store, then a real Redis (closed in the test's loop)."""
    build: Callable[[pytest.FixtureRequest, Clock], Store] = request.param
    made = build(request, clock)
    yield made
    if isinstance(made, RedisStore):
        made.close()
        await made.aclose()


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def wrong_password(request: Request) -> Response:
    return PlainTextResponse("no", status_code=401)


def middleware(text: str, store: Store) -> RateLimitMiddleware:
    app = Starlette(
        routes=[Route("/api/x", hello), Route("/login", wrong_password, methods=["POST"])]
    )
    return RateLimitMiddleware(app, policy=make_policy(text), store=store)


async def each_from(
    app: Any, addresses: list[str], method: str = "GET", path: str = "/api/x"
) -> list[Any]:
    """One request from each address, in order: the responses."""
    responses = []
    for ip in addresses:
        async with asgi_client(app, ip=ip) as client:
            responses.append(await client.request(method, path))
    return responses


async def admitted(app: Any, peer: str, headers: list[dict[str, str]]) -> int:
    """How many of the requests from ``peer`` (one per header set) the app answered."""
    async with asgi_client(app, ip=peer) as client:
        responses = [await client.get("/api/x", headers=sent) for sent in headers]
    return sum(response.status_code == 200 for response in responses)


# the forwarding header: only the one the proxies write


async def test_behind_a_proxy_writing_forwarded_a_rotating_x_forwarded_for_gets_the_limit(
    store: MemoryStore,
) -> None:
    app = middleware(PROXIED.format(header="forwarded"), store)
    # the proxy writes Forwarded and passes the client's own X-Forwarded-For through
    rotating = [
        {"Forwarded": f"for={CLIENT};proto=https", "X-Forwarded-For": f"198.51.100.{n}"}
        for n in range(100)
    ]

    assert await admitted(app, PROXY, rotating) == 10
    async with asgi_client(app, ip=PROXY) as client:
        refused = await client.get("/api/x", headers=rotating[0])
    assert (refused.status_code, refused.json()) == (429, {"ip": CLIENT})


async def test_behind_a_proxy_writing_x_forwarded_for_a_rotating_forwarded_gets_the_limit(
    store: MemoryStore,
) -> None:
    app = middleware(PROXIED.format(header="X-Forwarded-For"), store)
    rotating = [{"X-Forwarded-For": CLIENT, "Forwarded": f"for=198.51.100.{n}"} for n in range(100)]

    assert await admitted(app, PROXY, rotating) == 10


async def test_behind_a_proxy_writing_x_real_ip_rotating_other_headers_gets_the_limit(
    store: MemoryStore,
) -> None:
    app = middleware(PROXIED.format(header="X-Real-IP"), store)
    rotating = [
        {"X-Real-IP": CLIENT, "X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=192.0.2.{n}"}
        for n in range(100)
    ]

    assert await admitted(app, PROXY, rotating) == 10


@pytest.mark.parametrize("header", ["forwarded", "x-forwarded-for", "x-real-ip"])
async def test_each_forwarded_client_has_its_own_count(store: MemoryStore, header: str) -> None:
    app = middleware(PROXIED.format(header=header), store)

    def naming(ip: str) -> dict[str, str]:
        return {"Forwarded": f"for={ip}"} if header == "forwarded" else {header: ip}

    first = await admitted(app, PROXY, [naming(CLIENT)] * 12)
    second = await admitted(app, PROXY, [naming("203.0.113.8")] * 12)

    assert (first, second) == (10, 10)


# IPv6 clients: counted by their /64


async def test_a_client_rotating_addresses_in_its_64_gets_exactly_the_limit(
    any_store: Store,
) -> None:
    app = middleware(PER_IP.format(extra=""), any_store)

    responses = await each_from(app, ONE_64)

    assert [r.status_code for r in responses] == [200] * 10 + [429] * 90
    assert responses[50].json() == {"ip": ONE_64[50]}  # the body names the address used
    assert [r.headers["x-ratelimit-remaining"] for r in responses[:10]] == [
        str(n) for n in range(9, -1, -1)
    ]


async def test_two_64s_are_counted_apart(any_store: Store) -> None:
    app = middleware(PER_IP.format(extra=""), any_store)
    await each_from(app, ONE_64[:12])

    [other] = await each_from(app, [OTHER_64])

    assert (other.status_code, other.headers["x-ratelimit-remaining"]) == (200, "9")


async def test_a_lockout_blocks_the_whole_64(any_store: Store, clock: Clock) -> None:
    lockout = (
        "lockouts:\n  login: {categories: [login], failure_status: [401], by: ip, threshold: 3,"
        " window: 15 minutes, block: 15 minutes}\n"
    )
    app = middleware(PER_IP.format(extra=lockout), any_store)
    failures = await each_from(app, ONE_64[:3], "POST", "/login")

    clock.t += 60
    blocked, other = await each_from(app, [ONE_64[99], OTHER_64], "POST", "/login")

    assert [r.status_code for r in failures] == [401] * 3  # the app's own answer
    assert (blocked.status_code, blocked.headers["retry-after"]) == (429, "840")
    assert blocked.json()["error"]["code"] == "blocked"
    assert other.status_code == 401  # another /64 reaches the app


async def test_the_penalty_blocks_the_whole_64(any_store: Store, clock: Clock) -> None:
    penalty = "penalty: {rejections: 3, window: 1 minute, block: 10 minutes}\n"
    app = middleware(PER_IP.format(extra=penalty), any_store)
    first = await each_from(app, ONE_64[:13])

    clock.t += 61
    blocked, other = await each_from(app, [ONE_64[99], OTHER_64])

    assert [r.status_code for r in first] == [200] * 10 + [429] * 3
    assert (blocked.status_code, blocked.headers["retry-after"]) == (429, "539")
    assert other.status_code == 200


async def test_a_route_limit_by_ip_counts_ipv6_clients_by_their_64(store: MemoryStore) -> None:
    per_ip = ratekeeper.limit("10/minute", key="ip", store=store, algorithm="fixed_window")

    @per_ip
    async def search(request: Request) -> Response:
        return PlainTextResponse("found")

    app = Starlette(routes=[Route("/search", search)])
    responses = await each_from(app, [*ONE_64, OTHER_64], path="/search")

    assert [r.status_code for r in responses] == [200] * 10 + [429] * 90 + [200]


async def test_a_route_limit_takes_its_own_prefixes(store: MemoryStore) -> None:
    per_48 = ratekeeper.limit(
        "10/minute", key="ip", store=store, algorithm="fixed_window", ipv4_prefix=24,
        ipv6_prefix=48,
    )  # fmt: skip

    @per_48
    async def search(request: Request) -> Response:
        return PlainTextResponse("found")

    app = Starlette(routes=[Route("/search", search)])
    one_48 = [f"2001:db8:1:{n:x}::1" for n in range(12)]
    one_24 = [f"198.51.100.{n}" for n in range(1, 13)]

    assert [r.status_code for r in await each_from(app, one_48, path="/search")].count(200) == 10
    assert [r.status_code for r in await each_from(app, one_24, path="/search")].count(200) == 10


# identity.networks


#: loopback proxy; monitoring exempt; 192.0.2.0/24 on the internal plan; 10/minute otherwise
NETWORKS = """\
version: 1
identity:
  trusted_proxies: [127.0.0.1/32]
  networks:
    - {cidr: [10.0.0.0/8, "fd00::/8"], exempt: true}
    - {cidr: 192.0.2.0/24, plan: internal}
anonymous_plan: anonymous
limits:
  api: {by: ip, rate: 10/minute, algorithm: fixed_window}
  heavy: {by: api_key, rate: 10/minute, algorithm: fixed_window}
plans:
  anonymous: {limits: {heavy: 10/minute}}
  internal: {limits: {heavy: 50/minute}}
  free: {limits: {heavy: 5/minute}}
keys:
  - {key: k-free, id: k-free, plan: free}
categories:
  - {name: api, match: /api/**, charge: [api]}
  - {name: heavy, match: /heavy, charge: [heavy]}
"""


def networked(store: Store) -> RateLimitMiddleware:
    app = Starlette(routes=[Route("/api/x", hello), Route("/heavy", hello)])
    return RateLimitMiddleware(app, policy=make_policy(NETWORKS), store=store)


async def test_an_exempt_network_is_never_refused_and_gets_no_rate_headers(
    any_store: Store,
) -> None:
    app = networked(any_store)
    laned = app.limiter.lane("GET", "/api/x") is not None
    assert laned == isinstance(any_store, MemoryStore)  # both ways are run

    monitoring = await each_from(app, ["10.1.2.3"] * 50 + [f"fd00::{n:x}" for n in range(50)])
    outsider = await each_from(app, ["203.0.113.7"] * 11)

    assert {(r.status_code, r.text) for r in monitoring} == {(200, "hello")}
    assert not any("x-ratelimit-limit" in r.headers for r in monitoring)
    assert [r.status_code for r in outsider] == [200] * 10 + [429]


async def test_the_exempt_network_is_the_client_behind_the_proxy_not_the_proxy(
    any_store: Store,
) -> None:
    app = networked(any_store)
    async with asgi_client(app, ip=PROXY) as client:
        monitoring = [
            await client.get("/api/x", headers={"X-Forwarded-For": "10.1.2.3"}) for _ in range(20)
        ]
        proxied = [
            await client.get("/api/x", headers={"X-Forwarded-For": "10.1.2.3, 203.0.113.7"})
            for _ in range(11)
        ]
    async with asgi_client(app, ip="198.51.100.9") as client:
        spoofed = [
            await client.get("/api/x", headers={"X-Forwarded-For": "10.1.2.3"}) for _ in range(11)
        ]

    assert {r.status_code for r in monitoring} == {200}
    assert [r.status_code for r in proxied] == [200] * 10 + [429]
    assert [r.status_code for r in spoofed] == [200] * 10 + [429]


async def test_a_network_plan_gives_its_keyless_callers_the_plan_s_limit(
    any_store: Store,
) -> None:
    app = networked(any_store)

    internal = await each_from(app, ["192.0.2.10"] * 51, path="/heavy")
    outsider = await each_from(app, ["203.0.113.7"] * 11, path="/heavy")

    assert [r.status_code for r in internal] == [200] * 50 + [429]
    assert {r.headers["x-ratelimit-limit"] for r in internal} == {"50"}
    assert [r.status_code for r in outsider] == [200] * 10 + [429]
    assert outsider[0].headers["x-ratelimit-limit"] == "10"


async def test_a_key_presented_from_a_network_keeps_its_plan(any_store: Store) -> None:
    app = networked(any_store)
    async with asgi_client(app, ip="192.0.2.10") as client:
        keyed = [await client.get("/heavy", headers={"X-API-Key": "k-free"}) for _ in range(6)]

    assert [r.status_code for r in keyed] == [200] * 5 + [429]
    assert keyed[0].headers["x-ratelimit-limit"] == "5"

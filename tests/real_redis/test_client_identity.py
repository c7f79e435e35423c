"""Who the client is, on every store: IPv6 clients counted by their /64; policy networks.

A host or site is given a whole IPv6 /64 and can send every request from a new
address of it; counted per address, one client rotating addresses got 100 of
100 requests through a per-IP limit. Limits, lockouts and the penalty count it
by its network; answers still name the address it used.

``identity.networks`` exempts client ranges (monitoring, internal services) or
gives their callers without a key a plan; the key's own plan wins.

Each test runs on the memory store and on a real Redis (the fixtures of
tests/conftest.py), on a clock the test sets.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator

import pytest

from ratekeeper import Limiter, MemoryStore, PolicyDecision, Store
from ratekeeper.policy import policy_from_text
from ratekeeper.stores import RedisStore
from support.clock import Clock

T0 = 1_700_002_800.0  # on a whole hour: every window starts here
ONE_64 = [f"2001:db8:1:2::{n:x}" for n in range(1, 101)]  # 100 addresses of one /64
OTHER_64 = "2001:db8:1:3::1"

#: 10 per minute per client IP; 429 bodies name the address the client used
PER_IP = """\
version: 1
{identity}
limits:
  api: {{by: ip, rate: 10/minute, algorithm: fixed_window}}
categories:
  - {{name: api, match: /api/**, charge: [api]}}
  - {{name: login, match: POST /login, charge: [api]}}
responses:
  rate_limited: {{status: 429, body: {{ip: "{{ip}}"}}}}
"""

LOCKOUT = """\
lockouts:
  login: {categories: [login], failure_status: [401], by: ip, threshold: 3,
          window: 15 minutes, block: 15 minutes}
"""

PENALTY = """\
penalty: {rejections: 3, window: 1 minute, block: 10 minutes}
"""


def memory_store(request: pytest.FixtureRequest, clock: Clock) -> Store:
    return MemoryStore(clock=clock)


def redis_store(request: pytest.FixtureRequest, clock: Clock) -> Store:
    return RedisStore.from_url(request.getfixturevalue("redis_url"), clock=clock, timeout=2.0)


STORES = [
    pytest.param(memory_store, id="memory"),
    pytest.param(redis_store, id="redis", marks=pytest.mark.redis),
]


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Store]:
    build: Callable[[pytest.FixtureRequest, Clock], Store] = request.param
    made = build(request, clock)
    yield made
    if isinstance(made, RedisStore):
        made.close()


def limiter(store: Store, identity: str = "", extra: str = "") -> Limiter:
    text = PER_IP.format(identity=identity) + extra
    return Limiter(policy_from_text(textwrap.dedent(text), name="t"), store)


def get(limiter: Limiter, ip: str, path: str = "/api/x") -> PolicyDecision:
    return limiter.check(path=path, client_ip=ip)


def admitted(limiter: Limiter, addresses: list[str]) -> int:
    return sum(get(limiter, ip).allowed for ip in addresses)


# limits


def test_a_client_rotating_addresses_in_its_64_gets_exactly_the_limit(store: Store) -> None:
    per_ip = limiter(store)

    assert admitted(per_ip, ONE_64) == 10
    refused = get(per_ip, ONE_64[0])
    assert (refused.status_code, refused.client_ip) == (429, ONE_64[0])
    assert refused.body == b'{"ip": "2001:db8:1:2::1"}'  # the address it used, not its /64


def test_two_64s_are_counted_apart(store: Store) -> None:
    per_ip = limiter(store)
    admitted(per_ip, ONE_64)

    other = get(per_ip, OTHER_64)

    assert (other.allowed, other.remaining) == (True, 9)


def test_ipv4_mapped_and_plain_spellings_of_one_client_share_one_count(store: Store) -> None:
    per_ip = limiter(store)
    spellings = ["203.0.113.7", "::ffff:203.0.113.7", "::FFFF:cb00:7107"] * 5

    assert admitted(per_ip, spellings) == 10


def test_ipv4_clients_are_counted_per_address_unless_a_prefix_is_set(store: Store) -> None:
    addresses = [f"203.0.113.{n}" for n in range(1, 101)]

    assert admitted(limiter(store), addresses) == 100
    per_24 = limiter(store, "identity: {ipv4_prefix: 24}")
    assert admitted(per_24, [f"198.51.100.{n}" for n in range(1, 101)]) == 10


def test_the_ipv6_prefix_is_configurable(store: Store) -> None:
    per_48 = limiter(store, "identity: {ipv6_prefix: 48}")
    one_48 = [f"2001:db8:1:{n:x}::1" for n in range(100)]

    assert admitted(per_48, one_48) == 10
    assert get(per_48, "2001:db8:2::1").allowed is True


def test_a_prefix_of_128_counts_each_ipv6_address_alone(store: Store) -> None:
    per_address = limiter(store, "identity: {ipv6_prefix: 128}")

    assert admitted(per_address, ONE_64) == 100


# lockouts and the penalty


def test_a_lockout_blocks_the_whole_64(store: Store, clock: Clock) -> None:
    locking = limiter(store, extra=LOCKOUT)
    for ip in ONE_64[:3]:  # three failures, each from a new address
        attempt = locking.check(method="POST", path="/login", client_ip=ip)
        assert attempt.allowed
        locking.record_response(attempt, 401)

    clock.t += 60  # the minute's rate has room again: only the block refuses
    blocked = locking.check(method="POST", path="/login", client_ip=ONE_64[50])
    other = locking.check(method="POST", path="/login", client_ip=OTHER_64)

    assert (blocked.status_code, blocked.response, blocked.retry_after) == (429, "blocked", 840.0)
    assert blocked.client_ip == ONE_64[50]
    assert other.allowed is True


def test_the_penalty_blocks_the_whole_64(store: Store, clock: Clock) -> None:
    penalised = limiter(store, extra=PENALTY)
    answers = [get(penalised, ip) for ip in ONE_64[:13]]
    assert [d.allowed for d in answers] == [True] * 10 + [False] * 3  # the third refusal blocks

    clock.t += 61  # a new minute: only the block refuses
    blocked = get(penalised, ONE_64[99])
    other = get(penalised, OTHER_64)

    assert (blocked.allowed, round(blocked.retry_after)) == (False, 539)
    assert other.allowed is True


# identity.networks: exempt ranges and network plans

NETWORKS = """\
version: 1
identity:
  trusted_proxies: [127.0.0.1/32]
  networks:
    - {cidr: [10.0.0.0/8, "fd00::/8"], exempt: true}
    - {cidr: 192.0.2.0/24, plan: internal}
anonymous_plan: anonymous
limits:
  api: {by: api_key, rate: 10/minute, algorithm: fixed_window}
plans:
  anonymous: {limits: {api: 10/minute}}
  internal: {limits: {api: 50/minute}}
  free: {limits: {api: 5/minute}}
keys:
  - {key: k-free, id: k-free, plan: free}
categories:
  - {name: health, match: /health, exempt: true}
  - {name: api, match: /api/**, charge: [api]}
  - {name: login, match: POST /login, charge: [api]}
lockouts:
  login: {categories: [login], failure_status: [401], by: ip, threshold: 3,
          window: 15 minutes, block: 15 minutes}
"""


def networked(store: Store, text: str = NETWORKS) -> Limiter:
    return Limiter(policy_from_text(textwrap.dedent(text), name="t"), store)


def test_an_exempt_network_is_never_refused_while_others_are(store: Store) -> None:
    limiter = networked(store)
    monitoring = [get(limiter, "10.1.2.3") for _ in range(100)]
    internal_v6 = [get(limiter, f"fd00::{n:x}") for n in range(100)]
    outsider = [get(limiter, "203.0.113.7") for _ in range(11)]

    assert all(d.allowed and d.exempt for d in monitoring + internal_v6)
    # answered as an exempt category is: 200, no rate limit headers, nothing counted
    assert {(d.status_code, d.category, d.plan) for d in monitoring} == {(200, "api", None)}
    assert all(d.headers == {} and limiter.raw_headers(d) == [] for d in monitoring)
    assert [d.allowed for d in outsider] == [True] * 10 + [False]


def test_an_exempt_network_is_never_blocked_by_a_lockout(store: Store) -> None:
    limiter = networked(store)

    def failing(ip: str) -> list[int]:
        statuses = []
        for _ in range(5):
            attempt = limiter.check(method="POST", path="/login", client_ip=ip)
            statuses.append(attempt.status_code)
            if attempt.allowed:
                limiter.record_response(attempt, 401)
        return statuses

    assert failing("10.9.9.9") == [200] * 5
    assert failing("203.0.113.7") == [200] * 3 + [429] * 2  # the same failures block others


def test_a_network_is_matched_against_the_client_behind_the_trusted_proxy(store: Store) -> None:
    limiter = networked(store)

    def through(peer: str, forwarded: str) -> PolicyDecision:
        return limiter.check(path="/api/x", client_ip=peer, headers={"X-Forwarded-For": forwarded})

    proxied = [through("127.0.0.1", "203.0.113.9, 10.1.2.3") for _ in range(20)]
    spoofed = [through("198.51.100.9", "10.1.2.3") for _ in range(11)]

    assert all(d.exempt for d in proxied)
    assert [d.allowed for d in spoofed] == [True] * 10 + [False]  # its peer is no proxy


def test_a_network_plan_limits_its_keyless_callers_exactly(store: Store) -> None:
    limiter = networked(store)
    internal = [get(limiter, "192.0.2.10") for _ in range(51)]
    neighbour = get(limiter, "192.0.2.11")  # counted per address, under the same plan
    outsider = [get(limiter, "203.0.113.7") for _ in range(11)]

    assert [d.allowed for d in internal] == [True] * 50 + [False]
    assert {(d.plan, d.limit) for d in internal} == {("internal", 50)}
    assert internal[0].headers["X-RateLimit-Limit"] == "50"
    assert (neighbour.allowed, neighbour.plan, neighbour.remaining) == (True, "internal", 49)
    assert [d.allowed for d in outsider] == [True] * 10 + [False]
    assert {d.plan for d in outsider} == {"anonymous"}


def test_a_key_presented_from_a_network_keeps_its_own_plan(store: Store) -> None:
    limiter = networked(store)
    keyed = [
        limiter.check(path="/api/x", client_ip="192.0.2.10", headers={"X-API-Key": "k-free"})
        for _ in range(6)
    ]
    unknown = limiter.check(path="/api/x", client_ip="192.0.2.10", headers={"X-API-Key": "nope"})

    assert [d.allowed for d in keyed] == [True] * 5 + [False]
    assert {(d.plan, d.key_id) for d in keyed} == {("free", "k-free")}
    assert unknown.status_code == 401  # unknown_key: reject, whatever the network


def test_an_unknown_key_counted_as_anonymous_gets_the_network_plan(store: Store) -> None:
    limiter = networked(
        store, NETWORKS.replace("anonymous_plan:", "unknown_key: anonymous\nanonymous_plan:")
    )
    answers = [
        limiter.check(path="/api/x", client_ip="192.0.2.10", headers={"X-API-Key": "nope"})
        for _ in range(51)
    ]

    assert [d.allowed for d in answers] == [True] * 50 + [False]
    assert {d.plan for d in answers} == {"internal"}


def test_a_network_plan_admits_keyless_callers_where_others_need_a_key(store: Store) -> None:
    limiter = networked(store, NETWORKS.replace("anonymous_plan: anonymous\n", ""))
    internal = [get(limiter, "192.0.2.10") for _ in range(51)]
    outsider = get(limiter, "203.0.113.7")

    assert [d.allowed for d in internal] == [True] * 50 + [False]
    assert outsider.status_code == 401

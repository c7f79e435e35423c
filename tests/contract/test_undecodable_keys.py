"""Keys that are not valid text, on every store of the matrix (see conftest.py).

A ``str`` can hold a lone surrogate (``"\\udcff"``, ``"\\ud800"``), which no
UTF-8 text can: a raw ASGI path, or any caller of the Python API. Such a key
is counted exactly like any other, by every store, and is never an outage:
before, redis-py's encoding error made the Redis store fail open (12 of 12
admitted against 5/minute), warn that Redis was down, and count an error. And
it is a counter of its own: no key, however it is spelled, shares another's
count (the escaped form of one key, spelled out as a real key, included).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ratekeeper import AsyncRateLimiter, Limiter, LockoutRule, RateLimiter
from ratekeeper.policy import policy_from_text
from ratekeeper.stores import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: lone surrogates: from surrogateescape (a byte that is not UTF-8), and from nowhere
UNDECODABLE = ["\udcff", "\ud800", "user:\udc80\udcff", "\ud83d\ude00"]

#: keys that must all be counters of their own: a lone surrogate, the escaped text
#: ``Limiter.check`` makes of it, the bytes Redis stores for it read as latin-1,
#: the character the surrogate pair would be, and escapes of escapes
APART = [
    "\udcff",
    "\ufffddcff",
    "\ufffd\ufffddcff",
    "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
    "\\udcff",
    "\ufffd",
    "\ud83d\ude00",
    "\N{GRINNING FACE}",
]


def outage_free(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """The store never thought its backend was down."""
    assert not store.degraded
    assert getattr(store, "errors", 0) == 0
    assert not [record for record in caplog.records if record.name == "ratekeeper.redis"]


@pytest.mark.parametrize("key", UNDECODABLE)
def test_a_key_that_is_not_text_is_limited_exactly_and_is_no_outage(
    key: str, store_factory: Callable[[Any], Store], clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = store_factory(clock)
    limiter = RateLimiter(store)

    admitted = [limiter.hit(key, "5/minute").allowed for _ in range(12)]
    several = [limiter.hit(key, "5/minute;100/hour").allowed for _ in range(12)]

    assert admitted == [True] * 5 + [False] * 7
    assert several == [False] * 12  # the minute is the same counter, already full
    outage_free(store, caplog)


async def test_a_key_that_is_not_text_is_limited_exactly_by_the_async_face(
    store_factory: Callable[[Any], Store], clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = store_factory(clock)
    limiter = AsyncRateLimiter(store)

    admitted = [(await limiter.hit("\ud800", "5/minute")).allowed for _ in range(12)]
    several = [(await limiter.hit("\udcff", "5/minute;100/hour")).allowed for _ in range(12)]

    assert admitted == [True] * 5 + [False] * 7
    assert several == [True] * 5 + [False] * 7
    outage_free(store, caplog)


def test_every_key_is_a_counter_of_its_own_however_alike_it_reads(
    store_factory: Callable[[Any], Store], clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = store_factory(clock)
    limiter = RateLimiter(store)

    for key in APART:
        assert [limiter.hit(key, "3/minute").allowed for _ in range(3)] == [True] * 3, key
    refused = [limiter.hit(key, "3/minute").allowed for key in APART]

    assert refused == [False] * len(APART)
    outage_free(store, caplog)


def test_lockouts_and_leases_take_keys_that_are_not_text(
    store_factory: Callable[[Any], Store], clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = store_factory(clock)
    rule = LockoutRule(threshold=2, window=60, block=60)

    first = store.lockouts.record_failure("\udcff", rule)
    second = store.lockouts.record_failure("\udcff", rule)
    other = store.lockouts.status("\ufffddcff")
    grant = store.leases.acquire("\ud800", 1, 10)
    full = store.leases.acquire("\ud800", 1, 10)

    assert (first.blocked, second.blocked, other.blocked) == (False, True, False)
    assert [block.key for block in store.lockouts.blocks()] == ["\udcff"]
    assert (grant.acquired, full.acquired) == (True, False)
    assert store.leases.release("\ud800", grant.lease_id or "")
    outage_free(store, caplog)


#: a body that shows every text placeholder; limits by path parameter and by header
POLICY = """\
version: 1
name: t
limits:
  by_ip: {by: ip, rate: 5/minute}
  by_file: {by: "path:name", rate: 5/minute}
  by_tenant: {by: "header:X-Tenant", rate: 5/minute}
categories:
  - {name: files, match: "/files/{name}", charge: [by_file], require_key: false}
  - {name: tenants, match: /tenants/**, charge: [by_tenant], require_key: false}
  - {name: api, match: /api/**, charge: [by_ip]}
responses:
  rate_limited:
    body: {error: "too many", path: "{path}", ip: "{ip}", method: "{method}",
           text: "{method} {path} from {ip}: retry in {retry_after}s"}
"""

#: (method, path, headers, client IP, what the body shows of the bad text) of
#: requests whose text is not valid
REQUESTS = {
    "path": ("GET", "/files/report-\udcff.pdf", {}, "203.0.113.7", "/files/report-\ufffddcff.pdf"),
    "header": ("GET", "/tenants/x", {"X-Tenant": "acme\udcff"}, "203.0.113.7", None),
    "client ip": ("GET", "/api/x", {}, "203.0.113.7\ud800", "203.0.113.7\ufffdd800"),
    "method": ("G\udcffT", "/api/x", {}, "203.0.113.8", "G\ufffddcffT"),
}


@pytest.mark.parametrize("request_text", REQUESTS.values(), ids=list(REQUESTS))
def test_a_request_whose_text_is_not_valid_is_limited_exactly_and_answered(
    request_text: tuple[str, str, dict[str, str], str, str | None],
    store_factory: Callable[[Any], Store],
    clock: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    method, path, headers, ip, shown = request_text
    store = store_factory(clock)
    limiter = Limiter(policy_from_text(POLICY), store=store)

    decisions = [
        limiter.check(method=method, path=path, headers=headers, client_ip=ip) for _ in range(12)
    ]

    assert [d.status_code for d in decisions] == [200] * 5 + [429] * 7
    assert [d.headers["X-RateLimit-Remaining"] for d in decisions[:5]] == ["4", "3", "2", "1", "0"]
    body = decisions[-1].body
    assert body is not None
    rendered = json.loads(body.decode("utf-8"))
    assert rendered["error"] == "too many"
    if shown is not None:  # the bad text, escaped: shown, never a surrogate
        assert shown in (rendered["path"], rendered["ip"], rendered["method"])
        assert shown in rendered["text"]
    outage_free(store, caplog)


def test_request_text_that_reads_like_an_escape_is_counted_apart(
    store_factory: Callable[[Any], Store], clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = store_factory(clock)
    limiter = Limiter(policy_from_text(POLICY), store=store)

    def statuses(tenant: str, times: int) -> list[int]:
        headers = {"X-Tenant": tenant}
        return [limiter.check(path="/tenants/x", headers=headers).status_code for _ in range(times)]

    assert statuses("\udcff", 5) == [200] * 5
    # "\ufffddcff" is how the first tenant is escaped: as a real value it is another tenant
    assert statuses("\ufffddcff", 5) == [200] * 5
    assert statuses("\ufffd\ufffddcff", 5) == [200] * 5
    assert statuses("\udcff", 1) == [429]
    outage_free(store, caplog)


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": "\udcff"}, {"Authorization": "Bearer \ud800"}, {"X-API-Key": "demo-pro\udcff"}],
    ids=["key", "bearer", "known key and a surrogate"],
)
def test_an_api_key_that_is_not_text_is_an_unknown_key(
    headers: dict[str, str], store_factory: Callable[[Any], Store], clock: Any
) -> None:
    limiter = Limiter(EXAMPLES / "scanner.yaml", store=store_factory(clock))

    decision = limiter.check(method="POST", path="/api/scans", headers=headers)

    assert decision.status_code == 401
    assert b"INVALID_API_KEY" in (decision.body or b"")

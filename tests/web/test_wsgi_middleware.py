"""The WSGI middleware on a bare WSGI app: headers, refusals, leases, construction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from webtools import CAP_POLICY, EXAMPLES, IP_POLICY, T0, make_policy, wsgi_client

from ratekeeper import AsyncLimiter, Limiter, MemoryStore
from ratekeeper.integrations.wsgi import RateLimitMiddleware
from support.clock import Clock

RESET = str(int(T0) + 60)
StartResponse = Callable[..., Any]


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


@pytest.fixture
def app(store: MemoryStore) -> RateLimitMiddleware:
    return RateLimitMiddleware(hello, policy=make_policy(IP_POLICY), store=store)


def test_admitted_responses_carry_the_trio_and_refusals_the_policy_body(
    app: RateLimitMiddleware, clock: Clock
) -> None:
    with wsgi_client(app) as client:
        admitted = [client.get("/api/hello") for _ in range(3)]
        clock.t += 15
        refused = client.get("/api/hello")

    assert [(r.status_code, r.text) for r in admitted] == [(200, "hello")] * 3
    assert [r.headers["x-ratelimit-remaining"] for r in admitted] == ["2", "1", "0"]
    assert {(r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-reset"]) for r in admitted} == {
        ("3", RESET)
    }
    assert refused.status_code == 429
    assert refused.content == b'{"error": "too_many", "ip": "203.0.113.7", "retry_after": 45}'
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["content-length"] == str(len(refused.content))
    assert (refused.headers["retry-after"], refused.headers["x-ratelimit-reset"]) == ("45", RESET)


def test_exempt_and_unmatched_paths_reach_the_app_without_rate_headers(
    app: RateLimitMiddleware,
) -> None:
    with wsgi_client(app) as client:
        responses = [client.get("/health") for _ in range(5)] + [client.get("/other")]

    assert {r.status_code for r in responses} == {200}
    assert all("x-ratelimit-limit" not in r.headers for r in responses)


def test_the_path_includes_the_script_name_and_is_read_as_utf8(store: MemoryStore) -> None:
    seen: list[str] = []
    policy = make_policy(IP_POLICY.replace("/api/**", "/v1/api/**"))
    middleware = RateLimitMiddleware(hello, policy=policy, store=store)

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/v1",
        "PATH_INFO": "/api/caf\u00c3\u00a9",  # "/api/café" as PEP 3333 carries it
        "REMOTE_ADDR": "192.0.2.1",
    }
    for _ in range(4):
        middleware(dict(environ), start_response)

    assert seen == ["200 OK", "200 OK", "200 OK", "429 Too Many Requests"]


def test_unknown_api_key_gets_the_providers_401(store: MemoryStore) -> None:
    middleware = RateLimitMiddleware(hello, policy=EXAMPLES / "utmstack.yaml", store=store)
    with wsgi_client(middleware) as client:
        response = client.get("/api/events", headers={"X-API-Key": "stolen"})
        bearer = client.get("/api/events", headers={"Authorization": "Bearer demo-admin"})

    assert response.status_code == 401
    assert response.json()["message"] == "A valid API key is required"
    assert "x-ratelimit-limit" not in response.headers
    assert (bearer.status_code, bearer.headers["x-ratelimit-limit"]) == (200, "600")


def test_the_apps_own_rate_limit_fields_are_left_to_it(store: MemoryStore) -> None:
    def own(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-RateLimit-Limit", "7")])
        return [b""]

    middleware = RateLimitMiddleware(own, policy=make_policy(IP_POLICY), store=store)
    with wsgi_client(middleware) as client:
        response = client.get("/api/x")

    assert response.headers.get_list("x-ratelimit-limit") == ["7"]
    assert response.headers["x-ratelimit-remaining"] == "2"


class Streamed:
    """A response body that stays open until closed, and says whether it was."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"part 1;"
        yield b"part 2"

    def close(self) -> None:
        self.closed = True


def leased_app(bodies: list[Streamed]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/api/boom":
            raise RuntimeError("the app failed")
        start_response("200 OK", [("Content-Type", "text/plain")])
        body = Streamed()
        bodies.append(body)
        return body

    return app


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def environ_for(path: str = "/api/x", key: str = "k1") -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REMOTE_ADDR": "192.0.2.1",
            "HTTP_X_API_KEY": key}  # fmt: skip


def test_a_lease_is_held_until_the_server_closes_the_response(store: MemoryStore) -> None:
    bodies: list[Streamed] = []
    middleware = RateLimitMiddleware(
        leased_app(bodies), policy=make_policy(CAP_POLICY), store=store
    )
    held = [middleware(environ_for(), _start) for _ in range(2)]
    statuses: list[str] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    refused = middleware(environ_for(), start)
    other_key = middleware(environ_for(key="k2"), _start)
    assert (statuses, list(refused)) == (["429 Too Many Requests"], [refused_body()])

    lease_key = lease_key_of(middleware, "k1")
    assert store.leases.in_use(lease_key) == 2
    assert b"".join(held[0]) == b"part 1;part 2"
    assert store.leases.in_use(lease_key) == 2  # read to the end, not yet closed
    held[0].close()  # type: ignore[attr-defined]
    assert (store.leases.in_use(lease_key), bodies[0].closed) == (1, True)
    held[1].close()  # type: ignore[attr-defined]
    other_key.close()  # type: ignore[attr-defined]
    assert store.leases.in_use(lease_key) == 0
    assert store.leases.in_use(lease_key_of(middleware, "k2")) == 0


def lease_key_of(middleware: RateLimitMiddleware, key: str) -> str:
    """The lease key of ``key``'s cap, as ``check`` reports it (without taking a lease)."""
    decision = middleware.limiter.check(path="/api/x", headers={"X-API-Key": key})
    return decision.concurrency[0][0]


def refused_body() -> bytes:
    return (
        b'{"error": {"code": "rate_limited", "message": '
        b'"Rate limit exceeded. Retry after 1 seconds.", "retry_after": 1}}'
    )


def test_leases_come_back_when_the_app_raises_or_the_client_goes_away(store: MemoryStore) -> None:
    bodies: list[Streamed] = []
    middleware = RateLimitMiddleware(
        leased_app(bodies), policy=make_policy(CAP_POLICY), store=store
    )
    for n in range(1000):
        if n % 2:
            with pytest.raises(RuntimeError, match="the app failed"):
                middleware(environ_for("/api/boom"), _start)
        else:
            response = middleware(environ_for(), _start)
            next(iter(response))  # the client hangs up after the first chunk:
            response.close()  # type: ignore[attr-defined]  # the server closes the iterable

    assert store.leases.in_use(lease_key_of(middleware, "k1")) == 0
    assert all(body.closed for body in bodies)
    assert len(bodies) == 500


def test_limiter_may_be_passed_instead_of_policy_and_store(store: MemoryStore) -> None:
    limiter = Limiter(make_policy(IP_POLICY), store=store)
    assert RateLimitMiddleware(hello, limiter=limiter).limiter is limiter
    twin = RateLimitMiddleware(hello, limiter=AsyncLimiter(make_policy(IP_POLICY), store)).limiter
    assert isinstance(twin, Limiter)
    assert twin.store is store
    with pytest.raises(TypeError, match="either limiter= or policy="):
        RateLimitMiddleware(hello, policy=EXAMPLES / "utmstack.yaml", limiter=limiter)

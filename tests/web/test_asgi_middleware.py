"""The ASGI middleware: headers, refusals, pass-through, streaming, construction."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from webtools import (
    CLIENT_IP,
    EXAMPLES,
    IP_POLICY,
    T0,
    Message,
    asgi_client,
    call_asgi,
    http_scope,
    make_policy,
    response_headers,
)

from ratekeeper import AsyncLimiter, Limiter, MemoryStore, StoreUnavailableError
from ratekeeper.integrations.asgi import RateLimitMiddleware
from support.clock import Clock

RESET = str(int(T0) + 60)


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def starlette_app(*extra: Route) -> Starlette:
    return Starlette(routes=[Route("/api/hello", hello), Route("/health", hello), *extra])


@pytest.fixture
def app(store: MemoryStore) -> RateLimitMiddleware:
    return RateLimitMiddleware(starlette_app(), policy=make_policy(IP_POLICY), store=store)


async def test_every_admitted_response_carries_the_rate_limit_trio(app: Any) -> None:
    async with asgi_client(app) as client:
        responses = [await client.get("/api/hello") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.text for r in responses] == ["hello"] * 3
    assert [
        (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) for r in responses
    ] == [("3", "2"), ("3", "1"), ("3", "0")]
    assert {r.headers["x-ratelimit-reset"] for r in responses} == {RESET}
    assert all("retry-after" not in r.headers for r in responses)


async def test_over_the_limit_the_policy_body_answers_with_retry_after(
    app: Any, clock: Clock
) -> None:
    async with asgi_client(app) as client:
        for _ in range(3):
            await client.get("/api/hello")
        clock.t += 20
        refused = await client.get("/api/hello")

    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    assert refused.content == b'{"error": "too_many", "ip": "203.0.113.7", "retry_after": 40}'
    assert refused.headers["content-length"] == str(len(refused.content))
    assert refused.headers["retry-after"] == "40"
    assert (refused.headers["x-ratelimit-limit"], refused.headers["x-ratelimit-remaining"]) == (
        "3",
        "0",
    )
    assert refused.headers["x-ratelimit-reset"] == RESET


async def test_a_refused_request_never_reaches_the_app(store: MemoryStore) -> None:
    calls: list[str] = []

    async def counted(request: Request) -> Response:
        calls.append(request.url.path)
        return PlainTextResponse("ok")

    app = RateLimitMiddleware(
        Starlette(routes=[Route("/api/c", counted)]), policy=make_policy(IP_POLICY), store=store
    )
    async with asgi_client(app) as client:
        statuses = [(await client.get("/api/c")).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
    assert len(calls) == 3


async def test_exempt_and_unmatched_endpoints_get_no_rate_limit_headers(app: Any) -> None:
    async with asgi_client(app) as client:
        exempt = [await client.get("/health") for _ in range(5)]
        unmatched = await client.get("/elsewhere")

    assert [r.status_code for r in exempt] == [200] * 5
    for response in [*exempt, unmatched]:
        assert not any(
            name.lower().startswith(("x-ratelimit", "retry-after")) for name in response.headers
        )


async def test_clients_are_counted_by_their_connection_address(app: Any) -> None:
    async with asgi_client(app) as first, asgi_client(app, ip="198.51.100.2") as second:
        for _ in range(3):
            await first.get("/api/hello")
        assert (await first.get("/api/hello")).status_code == 429
        other = await second.get("/api/hello")

    assert (other.status_code, other.headers["x-ratelimit-remaining"]) == (200, "2")


async def test_unknown_api_key_gets_401_in_the_providers_style_without_rate_headers(
    store: MemoryStore,
) -> None:
    app = RateLimitMiddleware(
        starlette_app(Route("/api/{rest:path}", hello)),
        policy=EXAMPLES / "utmstack.yaml",
        store=store,
    )
    async with asgi_client(app) as client:
        unknown = await client.get("/api/events", headers={"X-API-Key": "stolen"})
        bearer = await client.get("/api/events", headers={"Authorization": "Bearer demo-user"})

    assert unknown.status_code == 401
    assert unknown.json() == {
        "status": 401,
        "error": "Unauthorized",
        "message": "A valid API key is required",
    }
    assert "x-ratelimit-limit" not in unknown.headers
    assert (bearer.status_code, bearer.headers["x-ratelimit-limit"]) == (200, "100")


async def test_ietf_fields_are_sent_when_the_policy_asks_for_them(store: MemoryStore) -> None:
    policy = make_policy(
        """\
        version: 1
        name: t
        limits:
          api: {by: ip, rate: "2/minute;10/hour", algorithm: fixed_window}
        categories:
          - {name: api, match: /api/**, charge: [api]}
        headers: both
        """
    )
    app = RateLimitMiddleware(starlette_app(), policy=policy, store=store)
    async with asgi_client(app) as client:
        response = await client.get("/api/hello")

    assert response.headers["ratelimit-policy"] == '"api-1m";q=2;w=60, "api-1h";q=10;w=3600'
    assert response.headers["ratelimit"] == '"api-1m";r=1;t=60, "api-1h";r=9;t=3600'
    assert response.headers["x-ratelimit-limit"] == "2"


class _ClosedStore(MemoryStore):
    """A store whose backend is down and that fails closed, on both of its decision paths."""

    never_waits = False  # its async face is its own: the async limiter must call it

    async def apply_async(self, charges: Any, consume: bool = True) -> Any:
        raise StoreUnavailableError("down")

    async def apply_one_async(self, spec: Any, key: str, cost: int) -> Any:
        raise StoreUnavailableError("down")


async def test_a_store_failing_closed_answers_503_unavailable(clock: Clock) -> None:
    app = RateLimitMiddleware(
        starlette_app(), policy=make_policy(IP_POLICY), store=_ClosedStore(clock=clock)
    )
    async with asgi_client(app) as client:
        response = await client.get("/api/hello")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "error": {"code": "unavailable", "message": "Rate limiting is unavailable."}
    }


async def test_non_http_scopes_pass_through_untouched(app: RateLimitMiddleware) -> None:
    seen: list[tuple[Any, Any, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    middleware = RateLimitMiddleware(inner, policy=make_policy(IP_POLICY))

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        pass

    for scope_type in ("websocket", "lifespan"):
        scope = {"type": scope_type, "path": "/api/hello", "client": (CLIENT_IP, 1)}
        await middleware(scope, receive, send)
        assert seen[-1] == (scope, receive, send)
        assert seen[-1][0] is scope


async def test_streaming_bodies_pass_through_chunk_by_chunk(store: MemoryStore) -> None:
    async def chunks() -> Any:
        for index in range(3):
            yield f"chunk {index}\n"

    async def stream(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = RateLimitMiddleware(
        Starlette(routes=[Route("/api/stream", stream)]), policy=make_policy(IP_POLICY), store=store
    )
    messages = await call_asgi(app, http_scope("/api/stream"))

    bodies = [m["body"] for m in messages if m["type"] == "http.response.body"]
    assert bodies == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n", b""]
    assert response_headers(messages)["x-ratelimit-remaining"] == "2"


async def test_the_apps_own_rate_limit_fields_are_left_to_it(store: MemoryStore) -> None:
    cached = PlainTextResponse("mine", headers={"X-RateLimit-Limit": "7"})

    async def own(request: Request) -> Response:
        return cached  # one response object sent again and again

    app = RateLimitMiddleware(
        Starlette(routes=[Route("/api/own", own)]), policy=make_policy(IP_POLICY), store=store
    )
    async with asgi_client(app) as client:
        first = await client.get("/api/own")
        second = await client.get("/api/own")

    assert first.headers.get_list("x-ratelimit-limit") == ["7"]
    assert (first.headers["x-ratelimit-remaining"], second.headers["x-ratelimit-remaining"]) == (
        "2",
        "1",
    )
    assert second.headers.get_list("x-ratelimit-remaining") == ["1"]  # the cached list kept clean
    assert [name for name, _ in cached.raw_headers if name.startswith(b"x-")] == [
        b"x-ratelimit-limit"
    ]


async def test_repeated_forwarding_header_lines_are_read_as_one_list(store: MemoryStore) -> None:
    app = RateLimitMiddleware(starlette_app(), policy=make_policy(IP_POLICY), store=store)
    headers = [(b"x-forwarded-for", b"198.51.100.9"), (b"x-forwarded-for", b"192.0.2.44")]
    for _ in range(4):
        messages = await call_asgi(app, http_scope("/api/hello", headers=headers, ip="127.0.0.1"))

    start = messages[0]
    assert start["status"] == 429
    body = json.loads(messages[1]["body"])
    assert body["ip"] == "192.0.2.44"  # right-most untrusted hop


def test_limiter_may_be_passed_instead_of_policy_and_store(store: MemoryStore) -> None:
    limiter = AsyncLimiter(make_policy(IP_POLICY), store=store)
    assert RateLimitMiddleware(starlette_app(), limiter=limiter).limiter is limiter

    sync = Limiter(make_policy(IP_POLICY), store=store)
    twin = RateLimitMiddleware(starlette_app(), limiter=sync).limiter
    assert isinstance(twin, AsyncLimiter)
    assert (twin.policy, twin.store) == (sync.policy, sync.store)


def test_a_policy_path_is_loaded_and_the_store_defaults_to_memory() -> None:
    middleware = RateLimitMiddleware(starlette_app(), policy=EXAMPLES / "flowcms.yaml")
    assert middleware.limiter.policy.name == "flowcms"
    assert isinstance(middleware.limiter.store, MemoryStore)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs policy="),
        ({"policy": "x.yaml", "limiter": "limiter"}, "either limiter= or policy="),
        ({"limiter": object()}, "must be a Limiter or AsyncLimiter"),
    ],
)
def test_bad_construction_says_what_to_pass(kwargs: dict[str, Any], message: str) -> None:
    if kwargs.get("limiter") == "limiter":
        kwargs["limiter"] = AsyncLimiter(make_policy(IP_POLICY))
    with pytest.raises(TypeError, match=message):
        RateLimitMiddleware(starlette_app(), **kwargs)


async def test_json_responses_of_the_app_are_not_touched_beyond_headers(
    store: MemoryStore,
) -> None:
    async def data(request: Request) -> Response:
        return JSONResponse({"items": [1, 2]}, status_code=201, headers={"X-Trace": "abc"})

    app = RateLimitMiddleware(
        Starlette(routes=[Route("/api/data", data)]), policy=make_policy(IP_POLICY), store=store
    )
    async with asgi_client(app) as client:
        response = await client.get("/api/data")

    assert (response.status_code, response.json()) == (201, {"items": [1, 2]})
    assert response.headers["x-trace"] == "abc"
    assert response.headers["x-ratelimit-remaining"] == "2"


KEYED_POLICY = """\
version: 1
name: t
limits:
  api: {by: api_key, rate: 2/minute, algorithm: fixed_window}
plans:
  free: {limits: {api: 2/minute}}
  pro: {limits: {api: 5/minute}}
categories:
  - {name: api, match: /api/**, charge: [api]}
"""


@pytest.mark.parametrize("given", [AsyncLimiter, Limiter])
async def test_keys_pushed_to_the_given_limiter_later_reach_the_middleware(
    store: MemoryStore, given: type[AsyncLimiter] | type[Limiter]
) -> None:
    from ratekeeper.integrations.metrics import RateLimitMetrics
    from ratekeeper.policy import KeyEntry

    limiter = given(make_policy(KEYED_POLICY), store=store)
    # metrics= makes the middleware decide with a twin of the limiter (it adds a hook)
    app = RateLimitMiddleware(starlette_app(), limiter=limiter, metrics=RateLimitMetrics())
    assert app.limiter is not limiter
    headers = [(b"x-api-key", b"sk-new")]
    before = await call_asgi(app, http_scope("/api/hello", headers=headers))
    limiter.use_keys([KeyEntry("new", hashlib.sha256(b"sk-new").hexdigest(), "pro")])
    after = await call_asgi(app, http_scope("/api/hello", headers=headers))
    limiter.use_keys([])  # revoked
    revoked = await call_asgi(app, http_scope("/api/hello", headers=headers))

    assert before[0]["status"] == 401
    assert after[0]["status"] == 200
    assert dict(after[0]["headers"])[b"x-ratelimit-limit"] == b"5"  # the key's plan
    assert revoked[0]["status"] == 401

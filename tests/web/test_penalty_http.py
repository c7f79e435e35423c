"""The penalty through the middleware: a client that keeps sending while limited is blocked.

Providers warn that retrying at once after a 429 "may trigger temporary
IP-level blocks"; the policy's ``penalty`` does that on the lockout machinery,
so the block is answered with its own ``Retry-After``, is visible in the store
and can be lifted there. Time moves on a fake clock.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from webtools import T0, asgi_client, make_policy, wsgi_client

from ratekeeper import MemoryStore
from ratekeeper.integrations import asgi, wsgi
from support.clock import Clock

PENALTY = """\
version: 1
limits:
  api: {by: ip, rate: 2/minute, algorithm: fixed_window}
categories:
  - {name: api, match: /api/**, charge: [api]}
penalty: {rejections: 3, window: 1 minute, block: 10 minutes, escalation: 2}
"""

HAMMERER, OTHER = "198.51.100.9", "198.51.100.10"


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def asgi_app(store: MemoryStore) -> Any:
    app = Starlette(routes=[Route("/api/hello", hello)])
    return asgi.RateLimitMiddleware(app, policy=make_policy(PENALTY), store=store)


def wsgi_app(store: MemoryStore) -> Any:
    return wsgi.RateLimitMiddleware(wsgi_hello, policy=make_policy(PENALTY), store=store)


async def statuses(app: Any, ip: str, count: int, face: str) -> list[tuple[int, dict[str, str]]]:
    """``count`` requests from ``ip``: each answer's status and rate limit fields."""
    wanted = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after")
    answers = []
    if face == "asgi":
        async with asgi_client(app, ip) as client:
            for _ in range(count):
                r = await client.get("/api/hello")
                answers.append((r.status_code, {k: r.headers[k] for k in wanted if k in r.headers}))
    else:
        with wsgi_client(app, ip) as client:
            for _ in range(count):
                r = client.get("/api/hello")
                answers.append((r.status_code, {k: r.headers[k] for k in wanted if k in r.headers}))
    return answers


@pytest.mark.parametrize("face", ["asgi", "wsgi"])
async def test_a_client_that_ignores_429s_is_blocked_then_released(
    store: MemoryStore, clock: Clock, face: str
) -> None:
    app = asgi_app(store) if face == "asgi" else wsgi_app(store)
    answers = await statuses(app, HAMMERER, 6, face)
    assert [status for status, _ in answers] == [200, 200, 429, 429, 429, 429]
    # the first three refusals are the rate's own: come back when the minute ends
    assert answers[2][1]["retry-after"] == "60"
    # the fourth finds the client blocked for ten minutes, with the block's own fields
    assert answers[5][1] == {
        "x-ratelimit-limit": "3",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(T0) + 600),
        "retry-after": "600",
    }
    # other clients are untouched, and the block is visible in the store
    assert [status for status, _ in await statuses(app, OTHER, 1, face)] == [200]
    (block,) = store.lockouts.blocks()
    assert HAMMERER in block.key
    # a minute later the rate would pass, but the block holds until its end
    clock.t += 60
    assert [status for status, _ in await statuses(app, HAMMERER, 1, face)] == [429]
    clock.t += 540
    assert [status for status, _ in await statuses(app, HAMMERER, 1, face)] == [200]
    assert store.lockouts.blocks() == []


async def test_an_operator_lifts_a_penalty_block_through_the_store(
    store: MemoryStore, clock: Clock
) -> None:
    app = asgi_app(store)
    await statuses(app, HAMMERER, 6, "asgi")
    (block,) = store.lockouts.blocks()
    assert store.lockouts.unblock(block.key)
    clock.t += 60  # the minute's rate has room again; nothing else stands in the way
    async with asgi_client(app, HAMMERER) as client:
        response = await client.get("/api/hello")
    assert (response.status_code, response.text) == (200, "hello")


async def test_a_blocked_client_gets_the_policy_429_body(store: MemoryStore) -> None:
    app = asgi_app(store)
    await statuses(app, HAMMERER, 5, "asgi")
    async with asgi_client(app, HAMMERER) as client:
        response = await client.get("/api/hello")
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content)["error"]


@pytest.mark.parametrize("face", ["asgi", "wsgi"])
async def test_each_further_penalty_block_in_a_row_lasts_twice_as_long(
    store: MemoryStore, clock: Clock, face: str
) -> None:
    app = asgi_app(store) if face == "asgi" else wsgi_app(store)
    await statuses(app, HAMMERER, 6, face)  # blocked for 10 minutes
    clock.t += 600
    # back, and straight into the same behaviour: 2 admitted, 3 refused, then blocked again
    answers = await statuses(app, HAMMERER, 6, face)
    assert [status for status, _ in answers] == [200, 200, 429, 429, 429, 429]
    assert answers[5][1]["retry-after"] == "1200"
    assert answers[5][1]["x-ratelimit-reset"] == str(int(T0) + 600 + 1200)
    clock.t += 1199
    assert [status for status, _ in await statuses(app, HAMMERER, 1, face)] == [429]
    clock.t += 1
    assert [status for status, _ in await statuses(app, HAMMERER, 1, face)] == [200]

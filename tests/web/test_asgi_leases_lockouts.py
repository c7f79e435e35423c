"""Through the ASGI middleware: concurrency leases, login lockouts, spoofed addresses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import fastapi
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from webtools import (
    CAP_POLICY,
    EXAMPLES,
    IP_POLICY,
    Message,
    asgi_client,
    call_asgi,
    http_scope,
    make_policy,
)

from ratekeeper import MemoryStore
from ratekeeper.integrations.asgi import RateLimitMiddleware
from support.clock import Clock

KEY = [(b"x-api-key", b"k1")]


async def lease_key(middleware: RateLimitMiddleware) -> str:
    """k1's lease key, as ``check`` reports it (without taking a lease)."""
    decision = await middleware.limiter.check(path="/api/x", headers={"X-API-Key": "k1"})
    return decision.concurrency[0][0]


@pytest.fixture
def capped(store: MemoryStore) -> tuple[RateLimitMiddleware, asyncio.Event]:
    gate = asyncio.Event()

    async def slow(request: Request) -> Response:
        await gate.wait()
        return PlainTextResponse("slow")

    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b"tick"
            await asyncio.sleep(0)

    async def stream(request: Request) -> Response:
        return StreamingResponse(forever())

    async def boom(request: Request) -> Response:
        raise RuntimeError("the app failed")

    app = Starlette(
        routes=[Route("/api/slow", slow), Route("/api/stream", stream), Route("/api/boom", boom)]
    )
    return RateLimitMiddleware(app, policy=make_policy(CAP_POLICY), store=store), gate


async def test_slow_requests_hold_their_slot_and_the_third_gets_429_retry_after_1(
    capped: tuple[RateLimitMiddleware, asyncio.Event], store: MemoryStore
) -> None:
    middleware, gate = capped
    async with asgi_client(middleware) as client:
        held = [asyncio.create_task(client.get("/api/slow", headers={"X-API-Key": "k1"}))]
        held.append(asyncio.create_task(client.get("/api/slow", headers={"X-API-Key": "k1"})))
        while store.leases.in_use(await lease_key(middleware)) < 2:
            await asyncio.sleep(0)
        third = await client.get("/api/slow", headers={"X-API-Key": "k1"})
        gate.set()
        done = await asyncio.gather(*held)

    assert third.status_code == 429
    assert third.headers["retry-after"] == "1"
    assert third.json()["error"]["retry_after"] == 1
    assert [r.status_code for r in done] == [200, 200]
    assert store.leases.in_use(await lease_key(middleware)) == 0


async def test_1000_aborted_requests_leak_no_lease(
    capped: tuple[RateLimitMiddleware, asyncio.Event], store: MemoryStore
) -> None:
    middleware, _ = capped

    async def disconnected() -> Message:
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    for n in range(1000):
        kind = n % 3
        if kind == 0:  # the client hangs up mid-stream
            await call_asgi(middleware, http_scope("/api/stream", headers=KEY), disconnected)
        elif kind == 1:  # the app raises
            with pytest.raises(RuntimeError, match="the app failed"):
                await call_asgi(middleware, http_scope("/api/boom", headers=KEY))
        else:  # the server cancels the request while it streams
            task = asyncio.create_task(
                call_asgi(middleware, http_scope("/api/stream", headers=KEY))
            )
            for _ in range(3):
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await asyncio.sleep(0)  # a shielded release runs in a task of its own

    assert store.leases.in_use(await lease_key(middleware)) == 0


BLOCKED = {
    "status": 429,
    "error": "Too Many Requests",
    "message": "Authentication blocked: IP 192.168.1.100 exceeded login attempt threshold",
}


@pytest.fixture
def utmstack(store: MemoryStore) -> RateLimitMiddleware:
    app = fastapi.FastAPI()

    @app.post("/api/authenticate")
    async def login(body: dict[str, str]) -> Response:
        if body.get("password") == "right":
            return PlainTextResponse("token")
        return PlainTextResponse("bad credentials", status_code=401)

    return RateLimitMiddleware(app, policy=EXAMPLES / "utmstack.yaml", store=store)


async def test_five_failed_logins_block_the_ip_and_only_that_ip_until_the_block_ends(
    utmstack: Any, clock: Clock
) -> None:
    async with (
        asgi_client(utmstack, ip="192.168.1.100") as attacker,
        asgi_client(utmstack, ip="192.168.1.101") as neighbour,
    ):
        successes = [
            await attacker.post("/api/authenticate", json={"password": "right"}) for _ in range(3)
        ]
        failed = [
            await attacker.post("/api/authenticate", json={"password": "guess"}) for _ in range(5)
        ]
        clock.t += 60
        sixth = await attacker.post("/api/authenticate", json={"password": "right"})
        other = await neighbour.post("/api/authenticate", json={"password": "guess"})
        clock.t += 840
        after = await attacker.post("/api/authenticate", json={"password": "right"})

    assert [r.status_code for r in successes + failed] == [200] * 3 + [401] * 5
    assert (sixth.status_code, sixth.json()) == (429, BLOCKED)
    assert sixth.headers["retry-after"] == "840"
    assert (sixth.headers["x-ratelimit-limit"], sixth.headers["x-ratelimit-remaining"]) == (
        "5",
        "0",
    )
    assert other.status_code == 401
    assert after.status_code == 200


@pytest.mark.parametrize(
    ("peer", "forwarded", "counted_as"),
    [
        ("203.0.113.7", ["198.51.100.1", "198.51.100.2", "198.51.100.3"], "203.0.113.7"),
        ("127.0.0.1", ["10.9.9.9, 198.51.100.4"] * 4, "198.51.100.4"),
        ("127.0.0.1", ["not-an-ip"] * 4, "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.5, 127.0.0.1"] * 4, "198.51.100.5"),
    ],
    ids=["untrusted-peer-spoofs", "trusted-proxy", "garbage", "chain-of-proxies"],
)
async def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    store: MemoryStore, peer: str, forwarded: list[str], counted_as: str
) -> None:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    middleware = RateLimitMiddleware(
        Starlette(routes=[Route("/api/x", hello)]), policy=make_policy(IP_POLICY), store=store
    )
    async with asgi_client(middleware, ip=peer) as client:
        responses = [
            await client.get("/api/x", headers={"X-Forwarded-For": xff})
            for xff in [*forwarded, forwarded[-1]]
        ]

    assert responses[3].status_code == 429
    assert responses[-1].json()["ip"] == counted_as

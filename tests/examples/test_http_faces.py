"""flowcms's concurrency cap through the real middleware: requests in flight, not decisions.

SEEDS.md, provider 3: the Starter tier allows 5 concurrent connections per API
key. The middleware takes a lease when it admits a request and gives it back
when the response is over, however it ends; over the cap it answers 429 with
``Retry-After: 1``. Here the upstream's ``GET /api/export`` streams a first
chunk and then waits for the test, so five requests stay in flight as long as
the test wants (``upstreams.py``).

ASGI: requests go through ``httpx.ASGITransport`` as asyncio tasks (the
transport returns a response once the app has finished, so a held request is a
task still running), and raw ``(scope, receive, send)`` calls where the client
must disconnect. WSGI: ``httpx.WSGITransport`` streams, so a held request is a
response whose body has not been read to the end.

The other example tests run through both middleware too (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from upstreams import EXPORT_CHUNKS, UPSTREAM_HEADER, AsgiUpstream, UpstreamError, WsgiUpstream

from ratekeeper import Limiter, MemoryStore, Policy, load_policy
from support.clock import Clock

POLICY: Policy = load_policy(Path(__file__).parents[2] / "examples" / "flowcms.yaml")
T0 = 1_700_000_040.0  # a minute boundary
IP = "203.0.113.7"
STARTER, PROFESSIONAL = "demo-starter", "demo-professional"
CAP = 5
EXPORT = "http://api.example/api/export"
BURST = 50  # aborted requests per burst: the starter tier allows 60 a minute, 1000 an hour
BURSTS = 20  # 1,000 aborted requests in all, a burst every other minute


def lease_key(key: str) -> str:
    """The lease key the middleware takes for ``key``'s API requests (from the limiter)."""
    limiter = Limiter(POLICY, store=MemoryStore(clock=Clock(T0)))
    decision = limiter.check(method="GET", path="/api/export", headers={"X-API-Key": key})
    [(found, _cap, _ttl)] = decision.concurrency
    assert found.endswith("{" + key + "}")  # one counter per key, whatever the address
    return found


def refusal_body(retry_after: int) -> bytes:
    """flowcms's 429 body as SEEDS.md writes it."""
    return json.dumps(
        {"error": {
            "code": "RATE_LIMIT_EXCEEDED",
            "message": f"You have exceeded your API rate limit. Please retry after {retry_after} "
                       "seconds.",
            "retry_after": retry_after,
            "docs_url": "https://docs.flowcms.io/rate-limits",
        }}
    ).encode()  # fmt: skip


def assert_over_the_cap(response: httpx.Response) -> None:
    """A 429 from the cap: ``Retry-After: 1``, flowcms's body, the upstream never reached."""
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert response.content == refusal_body(1)
    assert UPSTREAM_HEADER not in response.headers


def assert_streamed(response: httpx.Response, clock: Clock, remaining: int) -> None:
    """An export the upstream answered in full, with the per-minute trio on it."""
    assert response.status_code == 200
    assert response.headers[UPSTREAM_HEADER] == "flowcms"
    assert response.read() == b"".join(EXPORT_CHUNKS)
    assert response.headers["X-RateLimit-Limit"] == "60"
    assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert int(response.headers["X-RateLimit-Reset"]) > clock.t
    assert "Retry-After" not in response.headers


# ASGI


class AsgiFlowcms:
    """flowcms's ASGI upstream behind the ASGI middleware, and a client from ``IP``."""

    def __init__(self, client: httpx.AsyncClient, upstream: AsgiUpstream, store: MemoryStore,
                 clock: Clock, app: Any) -> None:  # fmt: skip
        self.client = client
        self.upstream = upstream
        self.store = store
        self.clock = clock
        self.app = app

    def export(self, request_id: str, key: str = STARTER, fail: str = "") -> asyncio.Task[Any]:
        params = {"id": request_id, **({"fail": fail} if fail else {})}
        return asyncio.create_task(
            self.client.get(EXPORT, params=params, headers={"X-API-Key": key})
        )

    async def started(self, *request_ids: str) -> None:
        """Wait (yielding to the loop, never sleeping) until these exports are streaming."""
        for _ in range(1000):
            if set(request_ids) <= self.upstream.started:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"not streaming: {set(request_ids) - self.upstream.started}")

    def in_use(self, key: str = STARTER) -> int:
        return self.store.leases.in_use(lease_key(key))


@pytest.fixture
async def asgi() -> AsyncIterator[AsgiFlowcms]:
    from ratekeeper.integrations.asgi import RateLimitMiddleware

    clock = Clock(T0)
    store = MemoryStore(clock=clock)
    upstream = AsgiUpstream("flowcms")
    app = RateLimitMiddleware(upstream, policy=POLICY, store=store)
    transport = httpx.ASGITransport(app=app, client=(IP, 51000))
    async with httpx.AsyncClient(transport=transport) as client:
        yield AsgiFlowcms(client, upstream, store, clock, app)


async def test_asgi_five_starter_requests_stream_at_once_and_the_sixth_gets_429(
    asgi: AsgiFlowcms,
) -> None:
    held = [asgi.export(str(n)) for n in range(CAP)]
    await asgi.started(*map(str, range(CAP)))
    assert asgi.in_use() == CAP

    sixth = await asgi.client.get(EXPORT, params={"id": "6"}, headers={"X-API-Key": STARTER})
    assert_over_the_cap(sixth)
    assert "6" not in asgi.upstream.started

    asgi.upstream.release("0")
    assert_streamed(await held[0], asgi.clock, remaining=60 - 1)  # the first of them
    assert asgi.in_use() == CAP - 1

    seventh = asgi.export("7")
    await asgi.started("7")
    assert asgi.in_use() == CAP

    for request_id in ["1", "2", "3", "4", "7"]:
        asgi.upstream.release(request_id)
    answers = await asyncio.gather(*held[1:], seventh)
    assert [response.status_code for response in answers] == [200] * CAP
    assert asgi.in_use() == 0


async def test_asgi_the_cap_is_per_key(asgi: AsgiFlowcms) -> None:
    held = [asgi.export(str(n)) for n in range(CAP)]
    await asgi.started(*map(str, range(CAP)))
    other = asgi.export("pro", key=PROFESSIONAL)
    await asgi.started("pro")

    assert (asgi.in_use(STARTER), asgi.in_use(PROFESSIONAL)) == (CAP, 1)
    for request_id in [*map(str, range(CAP)), "pro"]:
        asgi.upstream.release(request_id)
    await asyncio.gather(*held, other)
    assert (asgi.in_use(STARTER), asgi.in_use(PROFESSIONAL)) == (0, 0)


async def disconnecting_client(app: Any, request_id: str, key: str = STARTER) -> list[Any]:
    """One export over raw ASGI whose client goes away after the first chunk; the messages."""
    gone = asyncio.Event()
    asked = False
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            gone.set()  # the client reads the first chunk and hangs up

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/export", "raw_path": b"/api/export",
        "query_string": f"id={request_id}".encode(), "root_path": "",
        "headers": [(b"host", b"api.example"), (b"x-api-key", key.encode())],
        "client": (IP, 51000), "server": ("api.example", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    return sent


async def abort_one(asgi: AsgiFlowcms, how: str, request_id: str) -> None:
    """One starter export that ends badly, ``how``."""
    if how == "cancelled":  # the server cancels the request's task mid-stream
        task = asgi.export(request_id)
        await asgi.started(request_id)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif how == "disconnected":  # the client hangs up mid-stream
        sent = await disconnecting_client(asgi.app, request_id)
        assert sent[0]["status"] == 200
        assert request_id not in asgi.upstream.finished
    else:  # the upstream raises, before answering or half-way
        with pytest.raises(UpstreamError):
            await asgi.export(request_id, fail=how)


ABORTS = ["cancelled", "disconnected", "before", "during"]


async def test_asgi_1000_aborted_requests_leak_no_lease(asgi: AsgiFlowcms) -> None:
    for burst in range(BURSTS):
        asgi.clock.t = T0 + 120 * burst  # room for 50 more in the minute and the hour
        for n in range(BURST):
            await abort_one(asgi, ABORTS[n % len(ABORTS)], f"{burst}-{n}")
        # at the instant of the aborts: no lease can have timed out (ttl 5 minutes)
        assert asgi.in_use() == 0, f"burst {burst}"

    asgi.clock.t = T0 + 2 * 3600  # the hour's 1000 are spent: a fresh hour, the whole cap
    held = [asgi.export(f"after-{n}") for n in range(CAP)]
    await asgi.started(*(f"after-{n}" for n in range(CAP)))
    assert asgi.in_use() == CAP
    for n in range(CAP):
        asgi.upstream.release(f"after-{n}")
    assert [r.status_code for r in await asyncio.gather(*held)] == [200] * CAP


async def test_asgi_five_aborted_at_once_free_the_whole_cap(asgi: AsgiFlowcms) -> None:
    held = [asgi.export(str(n)) for n in range(CAP)]
    await asgi.started(*map(str, range(CAP)))
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)

    assert asgi.in_use() == 0
    again = [asgi.export(f"again-{n}") for n in range(CAP)]
    await asgi.started(*(f"again-{n}" for n in range(CAP)))
    assert asgi.in_use() == CAP
    for n in range(CAP):
        asgi.upstream.release(f"again-{n}")
    assert [r.status_code for r in await asyncio.gather(*again)] == [200] * CAP


# WSGI


class WsgiFlowcms:
    """flowcms's WSGI upstream behind the WSGI middleware, and a client from ``IP``."""

    def __init__(self, client: httpx.Client, upstream: WsgiUpstream, store: MemoryStore,
                 clock: Clock) -> None:  # fmt: skip
        self.client = client
        self.upstream = upstream
        self.store = store
        self.clock = clock

    def open(self, key: str = STARTER, fail: str = "") -> httpx.Response:
        """An export whose first chunk has arrived and whose body is still streaming."""
        params = {"fail": fail} if fail else {}
        request = self.client.build_request("GET", EXPORT, params=params,
                                            headers={"X-API-Key": key})  # fmt: skip
        return self.client.send(request, stream=True)

    def in_use(self, key: str = STARTER) -> int:
        return self.store.leases.in_use(lease_key(key))


@pytest.fixture
def wsgi() -> Iterator[WsgiFlowcms]:
    from ratekeeper.integrations.wsgi import RateLimitMiddleware

    clock = Clock(T0)
    store = MemoryStore(clock=clock)
    upstream = WsgiUpstream("flowcms")
    app = RateLimitMiddleware(upstream, policy=POLICY, store=store)
    with httpx.Client(transport=httpx.WSGITransport(app=app, remote_addr=IP)) as client:
        yield WsgiFlowcms(client, upstream, store, clock)


def test_wsgi_five_starter_responses_stream_at_once_and_the_sixth_gets_429(
    wsgi: WsgiFlowcms,
) -> None:
    held = [wsgi.open() for _ in range(CAP)]
    assert [r.status_code for r in held] == [200] * CAP
    assert wsgi.in_use() == CAP

    assert_over_the_cap(wsgi.client.get(EXPORT, headers={"X-API-Key": STARTER}))

    assert_streamed(held[0], wsgi.clock, remaining=60 - 1)
    held[0].close()
    assert wsgi.in_use() == CAP - 1

    held.append(wsgi.open())
    assert (held[-1].status_code, wsgi.in_use()) == (200, CAP)
    for response in held[1:]:
        response.read()
        response.close()
    assert wsgi.in_use() == 0
    assert wsgi.upstream.closed == CAP + 1


def abort_wsgi(wsgi: WsgiFlowcms, how: str) -> None:
    """One starter export that ends badly, ``how``."""
    if how == "abandoned":  # the client closes the response before the end
        response = wsgi.open()
        assert response.status_code == 200
        response.close()
    elif how == "before":  # the upstream raises instead of answering
        with pytest.raises(UpstreamError):
            wsgi.open(fail="before")
    else:  # the upstream raises half-way through the body
        response = wsgi.open(fail="during")
        with pytest.raises(UpstreamError):
            response.read()
        response.close()


def test_wsgi_1000_aborted_requests_leak_no_lease(wsgi: WsgiFlowcms) -> None:
    kinds = ["abandoned", "before", "during"]
    for burst in range(BURSTS):
        wsgi.clock.t = T0 + 120 * burst
        for n in range(BURST):
            abort_wsgi(wsgi, kinds[n % len(kinds)])
        assert wsgi.in_use() == 0, f"burst {burst}"


# what a 429 from the cap says


def cap_refusal_headers(clock: Clock) -> dict[str, str]:
    """SEEDS.md, flowcms: ``X-RateLimit-Limit`` is the tier's per-minute limit, on a 429 too.

    As on a 429 from the hourly quota (test_flowcms.py), the trio reports the
    minute's 60 with nothing remaining; Reset is when the request could pass
    (now + Retry-After).
    """
    return {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(clock.t) + 1),
        "Retry-After": "1",
    }


def trio_and_retry_after(response: httpx.Response) -> dict[str, str]:
    names = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]
    return {name: response.headers[name] for name in names if name in response.headers}


async def test_asgi_a_429_from_the_cap_reports_the_tier_s_per_minute_limit(
    asgi: AsgiFlowcms,
) -> None:
    held = [asgi.export(str(n)) for n in range(CAP)]
    await asgi.started(*map(str, range(CAP)))
    sixth = await asgi.client.get(EXPORT, headers={"X-API-Key": STARTER})
    for n in range(CAP):
        asgi.upstream.release(str(n))
    await asyncio.gather(*held)

    assert_over_the_cap(sixth)
    assert trio_and_retry_after(sixth) == cap_refusal_headers(asgi.clock)


def test_wsgi_a_429_from_the_cap_reports_the_tier_s_per_minute_limit(wsgi: WsgiFlowcms) -> None:
    held = [wsgi.open() for _ in range(CAP)]
    sixth = wsgi.client.get(EXPORT, headers={"X-API-Key": STARTER})
    for response in held:
        response.close()

    assert_over_the_cap(sixth)
    assert trio_and_retry_after(sixth) == cap_refusal_headers(wsgi.clock)


async def test_asgi_requests_refused_by_the_cap_take_nothing_from_the_rate_limits(
    asgi: AsgiFlowcms,
) -> None:
    held = [asgi.export(str(n)) for n in range(CAP)]
    await asgi.started(*map(str, range(CAP)))
    refused = [await asgi.client.get(EXPORT, headers={"X-API-Key": STARTER}) for _ in range(10)]
    asgi.upstream.release("0")
    await held[0]
    after = asgi.export("after")
    await asgi.started("after")
    for request_id in ["1", "2", "3", "4", "after"]:
        asgi.upstream.release(request_id)
    responses = await asyncio.gather(*held[1:], after)

    assert {r.status_code for r in refused} == {429}
    # like every other refusal (all or none): the 10 refused took nothing of the 60
    assert responses[-1].headers["X-RateLimit-Remaining"] == str(60 - CAP - 1)


def test_wsgi_requests_refused_by_the_cap_take_nothing_from_the_rate_limits(
    wsgi: WsgiFlowcms,
) -> None:
    held = [wsgi.open() for _ in range(CAP)]
    refused = [wsgi.client.get(EXPORT, headers={"X-API-Key": STARTER}) for _ in range(10)]
    held[0].close()
    after = wsgi.open()
    for response in [*held[1:], after]:
        response.close()

    assert {r.status_code for r in refused} == {429}
    assert after.headers["X-RateLimit-Remaining"] == str(60 - CAP - 1)


# a real server


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, AsgiFlowcms]]:
    """flowcms behind the ASGI middleware on a real uvicorn on 127.0.0.1: its URL and parts."""
    import socket

    import uvicorn

    from ratekeeper.integrations.asgi import RateLimitMiddleware

    clock = Clock(T0)
    store = MemoryStore(clock=clock)
    upstream = AsgiUpstream("flowcms")
    app = RateLimitMiddleware(upstream, policy=POLICY, store=store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.001)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url) as client:
            yield url, AsgiFlowcms(client, upstream, store, clock, app)
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def eventually(condition: Callable[[], bool]) -> None:
    """Waits for the server to notice (real sockets: this one waits on I/O, not on the clock)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never got there")


async def test_uvicorn_holds_five_streams_refuses_the_sixth_and_frees_a_slot_on_hang_up(
    served: tuple[str, AsgiFlowcms],
) -> None:
    _url, flowcms = served
    client = flowcms.client
    # uvicorn's peer is 127.0.0.1, a trusted proxy: X-Forwarded-For names the client
    headers = {"X-API-Key": STARTER, "X-Forwarded-For": IP}
    streams = []
    for n in range(CAP):
        request = client.build_request("GET", "/api/export", params={"id": str(n)},
                                       headers=headers)  # fmt: skip
        response = await client.send(request, stream=True)
        chunks = response.aiter_raw()
        assert await anext(chunks) == EXPORT_CHUNKS[0]  # streaming, not buffered
        streams.append((response, chunks))
    assert flowcms.in_use() == CAP

    sixth = await client.get("/api/export", headers=headers)
    assert_over_the_cap(sixth)

    hung_up, _ = streams.pop(0)
    await hung_up.aclose()  # the client goes away mid-stream
    await eventually(lambda: flowcms.in_use() == CAP - 1)

    seventh = await client.send(
        client.build_request("GET", "/api/export", params={"id": "7"}, headers=headers),
        stream=True,
    )
    assert (seventh.status_code, seventh.headers["X-RateLimit-Limit"]) == (200, "60")
    flowcms.upstream.release("7")
    assert await seventh.aread() == b"".join(EXPORT_CHUNKS)
    await seventh.aclose()

    for n in range(1, CAP):
        flowcms.upstream.release(str(n))
    for response, chunks in streams:
        assert [chunk async for chunk in chunks] == list(EXPORT_CHUNKS[1:])
        await response.aclose()
    await eventually(lambda: flowcms.in_use() == 0)

"""The gateway on the wire: a real client, the gateway under uvicorn, the upstream under uvicorn.

Each test starts both servers on free loopback ports (``conftest.py``); the
gateway's store runs on a fake clock reading ``T0``, so every number asserted
is exact. The policies are the examples': flowcms (per-key minute limits and
a cap of 5 connections for ``demo-starter``; ``demo-enterprise`` unlimited,
used where only the proxying is under test) and utmstack (a login lockout fed
by the upstream's 401s).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest
from gateway_servers import T0, Served, eventually, gateway_for
from upstream import DOWNLOAD

from support.asgi_server import free_port

if TYPE_CHECKING:
    from upstream import TestUpstream

ENTERPRISE = {"X-API-Key": "demo-enterprise"}  # flowcms: unlimited, nothing counted
STARTER = {"X-API-Key": "demo-starter"}  # flowcms: 60/minute, 5 connections
CLIENT = "203.0.113.7"  # the gateway's peer is 127.0.0.1, a trusted proxy of both examples

Upstream = tuple[str, "TestUpstream"]


def received(response: httpx.Response) -> dict[str, str]:
    """The header fields the upstream's echo received (each name once)."""
    fields: dict[str, str] = {}
    for name, value in response.json()["headers"]:
        assert name not in fields, f"{name} arrived twice"
        fields[name] = value
    return fields


# streaming


async def test_a_chunked_upload_reaches_the_upstream_chunk_by_chunk(upstream: Upstream) -> None:
    url, app = upstream

    async def body() -> AsyncIterator[bytes]:
        yield b"part one;"
        # the second part is written only once the first is at the upstream: a gateway
        # that buffered the body would never get there
        await eventually(lambda: app.uploads.get("u") == [b"part one;"], "the body was held back")
        yield b"part two"

    async with gateway_for("flowcms", url) as served:
        response = await served.client.post("/api/upload?id=u", content=body(), headers=ENTERPRISE)

    assert (response.status_code, response.json()) == (200, {"chunks": 2, "bytes": 17})
    assert app.uploads["u"] == [b"part one;", b"part two"]


async def test_a_streamed_download_reaches_the_client_chunk_by_chunk(upstream: Upstream) -> None:
    url, app = upstream
    async with gateway_for("flowcms", url) as served:
        client = served.client
        request = client.build_request("GET", "/api/download?id=d", headers=ENTERPRISE)
        response = await client.send(request, stream=True)
        chunks = response.aiter_raw()
        first = await anext(chunks)  # while the upstream still holds the rest back
        assert "d" not in app.ended
        app.release("d")
        rest = [chunk async for chunk in chunks]
        await response.aclose()

    assert (response.status_code, response.headers["x-upstream"]) == (200, "yes")
    assert first == DOWNLOAD[0]
    assert rest == [DOWNLOAD[1]]
    assert "d" in app.ended


async def test_content_length_is_forwarded_when_the_client_sent_one_else_the_body_is_chunked(
    upstream: Upstream,
) -> None:
    url, _app = upstream

    async def chunked() -> AsyncIterator[bytes]:
        yield b"a" * 300
        yield b"b" * 700

    async with gateway_for("flowcms", url) as served:
        sized = await served.client.post("/api/echo", content=b"x" * 1000, headers=ENTERPRISE)
        streamed = await served.client.post("/api/echo", content=chunked(), headers=ENTERPRISE)
        empty = await served.client.get("/api/echo", headers=ENTERPRISE)

    assert sized.json()["body_bytes"] == 1000
    assert received(sized)["content-length"] == "1000"
    assert "transfer-encoding" not in received(sized)
    assert streamed.json()["body_bytes"] == 1000
    assert received(streamed)["transfer-encoding"] == "chunked"
    assert "content-length" not in received(streamed)
    assert empty.json()["body_bytes"] == 0  # no body: neither framing field is sent
    assert {"content-length", "transfer-encoding"}.isdisjoint(received(empty))


# header fields


async def test_hop_by_hop_fields_are_dropped_both_ways_and_end_to_end_ones_kept(
    upstream: Upstream,
) -> None:
    url, _app = upstream
    sent = {
        **ENTERPRISE,
        "Connection": "keep-alive, X-Hop-Named",
        "X-Hop-Named": "1",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "TE": "trailers",
        "Trailer": "X-Checksum",
        "X-End-To-End": "kept",
    }
    async with gateway_for("flowcms", url) as served:
        echoed = await served.client.get("/api/echo", headers=sent)
        answered = await served.client.get("/api/hop", headers=ENTERPRISE)

    up = received(echoed)
    hop = {"connection", "x-hop-named", "keep-alive", "proxy-authorization", "te", "trailer",
           "transfer-encoding", "upgrade"}  # fmt: skip
    assert hop.isdisjoint(up), up
    assert up["x-end-to-end"] == "kept"
    assert answered.status_code == 200
    down = dict(answered.headers)
    assert {"x-hop-named", "keep-alive", "proxy-authenticate", "trailer", "upgrade"}.isdisjoint(
        down
    ), down
    assert down.get("connection", "keep-alive") == "keep-alive"  # the gateway's own, if any
    assert down["x-end-to-end"] == "kept"


async def test_the_client_is_appended_to_x_forwarded_for_and_proto_and_host_are_the_gateway_s(
    upstream: Upstream,
) -> None:
    url, _app = upstream
    sent = {**ENTERPRISE, "Host": "api.example", "X-Forwarded-For": "198.51.100.1",
            "X-Forwarded-Proto": "https"}  # fmt: skip
    async with gateway_for("flowcms", url) as served:
        echoed = await served.client.get("/api/echo", headers=sent)
        bare = await served.client.get("/api/echo", headers=ENTERPRISE)

    up = received(echoed)
    assert up["x-forwarded-for"] == "198.51.100.1, 127.0.0.1"
    assert up["x-forwarded-proto"] == "http"  # how the client reached the gateway
    assert up["host"] == url.removeprefix("http://")  # the upstream's own name
    assert up["x-forwarded-host"] == "api.example"
    assert received(bare)["x-forwarded-for"] == "127.0.0.1"


async def test_preserve_host_passes_the_client_s_host(upstream: Upstream) -> None:
    url, _app = upstream
    async with gateway_for("flowcms", url, preserve_host=True) as served:
        echoed = await served.client.get("/api/echo", headers={**ENTERPRISE, "Host": "api.example"})

    assert received(echoed)["host"] == "api.example"
    assert "x-forwarded-host" not in received(echoed)


async def test_the_request_target_reaches_the_upstream_byte_for_byte(upstream: Upstream) -> None:
    url, _app = upstream
    target = "/api/echo/../echo/./a%2Fb%20c?q=a%20b&flag"
    async with gateway_for("flowcms", url) as served:
        port = int(served.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: gw\r\nX-API-Key: demo-enterprise\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        raw = await reader.read()
        writer.close()

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["target"] == target


# answers of the upstream and of the gateway


async def test_an_upstream_5xx_passes_through_unchanged_with_the_rate_limit_fields(
    upstream: Upstream,
) -> None:
    url, _app = upstream
    async with gateway_for("flowcms", url) as served:
        response = await served.client.get("/api/status/503", headers=STARTER)

    assert response.status_code == 503
    assert response.json() == {"upstream_status": 503}
    assert response.headers["x-upstream-says"] == "503"
    assert response.headers["x-ratelimit-limit"] == "60"
    assert response.headers["x-ratelimit-remaining"] == "59"


async def test_a_refused_connection_gets_502_with_a_json_error() -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with gateway_for("flowcms", closed) as served:
        response = await served.client.get("/api/pages", headers=STARTER)

    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {"code": "bad_gateway", "message": "the upstream could not be reached"}
    }
    assert response.headers["x-ratelimit-remaining"] == "59"  # the request was admitted


async def test_a_slow_upstream_gets_504_after_the_timeout_and_is_let_go(upstream: Upstream) -> None:
    url, app = upstream
    async with gateway_for("flowcms", url, timeout=0.2) as served:
        response = await served.client.get("/api/slow?id=s", headers=ENTERPRISE)
        await eventually(lambda: "s" in app.gone, "the upstream request was not dropped")

    assert response.status_code == 504
    assert response.json() == {
        "error": {"code": "gateway_timeout", "message": "the upstream did not answer within 0.2 s"}
    }


async def test_a_client_that_goes_away_cancels_its_upstream_request(upstream: Upstream) -> None:
    url, app = upstream
    async with gateway_for("flowcms", url) as served:
        waiting = asyncio.create_task(served.client.get("/api/slow?id=w", headers=ENTERPRISE))
        await eventually(lambda: "w" in app.started)
        waiting.cancel()  # the client hangs up before any answer
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await eventually(lambda: "w" in app.gone, "the upstream request outlived its client")


async def test_a_body_over_the_configured_limit_gets_413(upstream: Upstream) -> None:
    url, app = upstream

    async def chunked() -> AsyncIterator[bytes]:
        yield b"a" * 8
        yield b"b" * 8

    async with gateway_for("flowcms", url, max_body_size=10) as served:
        sized = await served.client.post("/api/echo", content=b"x" * 11, headers=ENTERPRISE)
        streamed = await served.client.post("/api/upload?id=big", content=chunked(),
                                            headers=ENTERPRISE)  # fmt: skip
        fits = await served.client.post("/api/echo", content=b"x" * 10, headers=ENTERPRISE)

    for response in (sized, streamed):
        assert response.status_code == 413
        assert response.json() == {
            "error": {"code": "payload_too_large", "message": "the body is over 10 bytes"}
        }
    assert app.hits["/echo"] == 1  # the sized one never left the gateway
    assert fits.json()["body_bytes"] == 10


# the middleware's rules, through the gateway


async def test_the_upstream_s_own_rate_limit_fields_win_and_ours_fill_the_rest(
    upstream: Upstream,
) -> None:
    url, _app = upstream
    async with gateway_for("flowcms", url) as served:
        response = await served.client.get("/api/own-limits", headers=STARTER)

    assert response.headers.get_list("x-ratelimit-limit") == ["5000"]
    assert response.headers.get_list("x-ratelimit-remaining") == ["4999"]
    # the sliding minute has its whole quota back two minute boundaries on
    assert response.headers.get_list("x-ratelimit-reset") == [str(int(T0) + 120)]


async def test_over_the_limit_the_gateway_answers_429_itself_with_the_policy_s_body(
    upstream: Upstream,
) -> None:
    url, app = upstream
    async with gateway_for("flowcms", url) as served:
        admitted = [await served.client.get("/api/echo", headers=STARTER) for _ in range(60)]
        refused = await served.client.get("/api/echo", headers=STARTER)

    assert {r.status_code for r in admitted} == {200}
    assert admitted[-1].headers["x-ratelimit-remaining"] == "0"
    assert app.hits["/echo"] == 60  # the 61st never reached the upstream
    assert refused.status_code == 429
    assert "x-upstream" not in refused.headers
    assert {name: refused.headers[name] for name in (
        "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after",
        "content-type")} == {
        "x-ratelimit-limit": "60", "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(T0) + 61), "retry-after": "61",
        "content-type": "application/json",
    }  # fmt: skip
    assert refused.content == (
        b'{"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "You have exceeded your API rate '
        b'limit. Please retry after 61 seconds.", "retry_after": 61, '
        b'"docs_url": "https://docs.flowcms.io/rate-limits"}}'
    )


async def test_a_login_lockout_is_fed_by_the_upstream_s_401s(upstream: Upstream) -> None:
    url, app = upstream
    attacker = {"X-Forwarded-For": CLIENT}
    async with gateway_for("utmstack", url) as served:
        client = served.client
        failed = [await client.post("/api/authenticate", content=b"guess", headers=attacker)
                  for _ in range(5)]  # fmt: skip
        blocked = await client.post("/api/authenticate", content=b"good", headers=attacker)
        other = await client.post("/api/authenticate", content=b"good",
                                  headers={"X-Forwarded-For": "203.0.113.8"})  # fmt: skip
        served.clock.t = T0 + 900  # the block's end
        again = await client.post("/api/authenticate", content=b"good", headers=attacker)

    assert [r.status_code for r in failed] == [401] * 5  # the upstream's own answers
    assert app.hits["/authenticate"] == 7  # five failures, the other client, the one after
    assert blocked.status_code == 429
    assert "x-upstream" not in blocked.headers
    assert blocked.headers["retry-after"] == "900"
    assert blocked.headers["x-ratelimit-reset"] == str(int(T0) + 900)
    assert blocked.json() == {
        "status": 429,
        "error": "Too Many Requests",
        "message": f"Authentication blocked: IP {CLIENT} exceeded login attempt threshold",
    }
    assert other.status_code == 200
    assert again.status_code == 200


async def test_a_concurrency_lease_is_held_while_a_response_streams_and_given_back_after(
    upstream: Upstream,
) -> None:
    url, app = upstream
    async with gateway_for("flowcms", url) as served:
        client = served.client
        streams = []
        for n in range(5):
            request = client.build_request("GET", f"/api/download?id={n}", headers=STARTER)
            response = await client.send(request, stream=True)
            chunks = response.aiter_raw()
            assert await anext(chunks) == DOWNLOAD[0]
            streams.append((response, chunks))

        sixth = await client.get("/api/download?id=6", headers=STARTER)
        assert sixth.status_code == 429
        assert sixth.headers["retry-after"] == "1"
        assert "6" not in app.started

        app.release("0")  # one response ends: its lease is given back
        response, chunks = streams.pop(0)
        assert [chunk async for chunk in chunks] == [DOWNLOAD[1]]
        await response.aclose()
        seventh = client.build_request("GET", "/api/download?id=7", headers=STARTER)
        held = await client.send(seventh, stream=True)
        assert held.status_code == 200
        held_chunks = held.aiter_raw()
        assert await anext(held_chunks) == DOWNLOAD[0]
        eighth = await client.get("/api/download?id=8", headers=STARTER)
        assert eighth.status_code == 429  # five in flight again

        response, _chunks = streams.pop(0)
        await response.aclose()  # a client hangs up mid-stream: its lease comes back too
        await eventually(lambda: "1" in app.gone, "the upstream response outlived its client")
        ninth = client.build_request("GET", "/api/download?id=9", headers=STARTER)
        last = await client.send(ninth, stream=True)
        assert last.status_code == 200

        for request_id in ("2", "3", "4", "7", "9"):
            app.release(request_id)
        for response, chunks in [*streams, (held, held_chunks), (last, last.aiter_raw())]:
            assert DOWNLOAD[1] in [chunk async for chunk in chunks]
            await response.aclose()
        lease = _starter_lease(served)
        await eventually(lambda: served.store.leases.in_use(lease) == 0, "a lease was kept")


def _starter_lease(served: Served) -> str:
    decision_limiter = served.gateway.limiter
    from ratekeeper import Limiter

    probe = Limiter(decision_limiter.policy, store=type(served.store)(clock=served.clock))
    decision = probe.check(method="GET", path="/api/download", headers=STARTER)
    [(key, _cap, _ttl)] = decision.concurrency
    return key

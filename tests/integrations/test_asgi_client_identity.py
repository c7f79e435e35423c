"""Through the ASGI middleware: who the client is, whatever it sends to look like someone else.

A client must not be able to pick the address it is counted by: the forwarding
header read is the one the policy's proxies write, and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from webtools import asgi_client, make_policy

from ratekeeper import MemoryStore
from ratekeeper.integrations.asgi import RateLimitMiddleware

PROXY = "127.0.0.1"
CLIENT = "203.0.113.7"

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


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def middleware(text: str, store: MemoryStore) -> RateLimitMiddleware:
    app = Starlette(routes=[Route("/api/x", hello)])
    return RateLimitMiddleware(app, policy=make_policy(text), store=store)


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

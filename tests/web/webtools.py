"""Helpers of the middleware tests: policies, and ASGI/WSGI callers.

Requests go through httpx's ``ASGITransport``/``WSGITransport`` (the real
request path of the middleware) or, where a test needs to see single ASGI
messages (streaming, disconnects), through :func:`call_asgi`. (A module of its
own: test modules cannot reliably import ``conftest``.)
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx

from ratekeeper import Policy
from ratekeeper.policy import policy_from_text

EXAMPLES = Path(__file__).parents[2] / "examples"

#: on a whole hour (and so on every minute), so reset times are round numbers
T0 = 1_700_002_800.0
CLIENT_IP = "203.0.113.7"

Message = MutableMapping[str, Any]


def make_policy(text: str) -> Policy:
    return policy_from_text(textwrap.dedent(text), name="t")


#: 3 per minute per client IP on /api/**, /health exempt, JSON bodies naming the IP
IP_POLICY = """\
version: 1
name: t
identity:
  trusted_proxies: [127.0.0.1/32, "::1/128"]
limits:
  api: {by: ip, rate: 3/minute, algorithm: fixed_window}
categories:
  - {name: health, match: /health, exempt: true}
  - {name: api, match: /api/**, charge: [api]}
responses:
  rate_limited:
    status: 429
    body: {error: too_many, ip: "{ip}", retry_after: "{retry_after}"}
"""


def asgi_client(app: Any, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    """An httpx client calling ``app`` in process, from ``ip``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://testserver"
    )


def wsgi_client(app: Any, ip: str = CLIENT_IP) -> httpx.Client:
    """An httpx client calling WSGI ``app`` in process, from ``ip``."""
    return httpx.Client(
        transport=httpx.WSGITransport(app=app, remote_addr=ip), base_url="http://testserver"
    )


def http_scope(
    path: str = "/api/x",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    ip: str = CLIENT_IP,
) -> dict[str, Any]:
    """A complete ASGI HTTP scope, as a server builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": (ip, 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def call_asgi(
    app: Callable[[Any, Any, Any], Awaitable[None]],
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]] | None = None,
) -> list[Message]:
    """Run one request through ``app``; returns every message it sent."""
    sent: list[Message] = []
    body_sent = asyncio.Event()
    done = asyncio.Event()

    async def default_receive() -> Message:
        # the body once, then nothing until the response is over (as a live client)
        if not body_sent.is_set():
            body_sent.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await app(scope, receive or default_receive, send)
    finally:
        done.set()
    return sent


def response_headers(messages: list[Message]) -> dict[str, str]:
    start = next(m for m in messages if m["type"] == "http.response.start")
    return {name.decode(): value.decode() for name, value in start["headers"]}


#: flowcms-like: 2 concurrent requests per key, and a rate no test runs out of
CAP_POLICY = """\
version: 1
name: t
limits:
  api: {by: api_key, rate: 100000/minute, algorithm: fixed_window}
  slots: {by: api_key, concurrency: 2, lease_ttl: 5 minutes}
plans:
  starter: {limits: {api: 100000/minute, slots: 2}}
keys:
  - {key: k1, id: k1, plan: starter}
  - {key: k2, id: k2, plan: starter}
categories:
  - {name: api, match: /api/**, charge: [api, slots]}
"""


class DjangoUrls:
    """``ROOT_URLCONF`` of the Django tests: Django takes any object with ``urlpatterns``."""

    urlpatterns: list[Any] = []  # noqa: RUF012 -- the Django tests fill it in


def use_django_urls(patterns: list[Any]) -> None:
    """Route Django's requests to ``patterns`` (its resolver caches the previous ones)."""
    from django.urls import clear_url_caches

    DjangoUrls.urlpatterns = patterns
    clear_url_caches()


#: utmstack's login answer, as an upstream gives it: 200 for the right password, else 401
GOOD_PASSWORD = "correct horse"

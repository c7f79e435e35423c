"""Requests whose path, header or address is not valid text: answered as due, never 500.

ASGI servers may decode path bytes that are not UTF-8 with ``surrogateescape``
(byte 0xFF becomes ``"\\udcff"`` in ``scope["path"]``). Before, such a path
made the refusal's body fail to render and the middleware raise (a 500 from
the server), and on Redis every request was admitted as if Redis were down.
Header values arrive as bytes and are decoded as latin-1, which cannot fail,
whatever the bytes: an API key that is not UTF-8 is an unknown key (401).
The WSGI middleware reads ``PATH_INFO`` as UTF-8 with the same escape, so
two different undecodable paths never share a counter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from webtools import Message, call_asgi, make_policy

from ratekeeper import MemoryStore, RedisStore, Store
from ratekeeper.integrations import asgi, wsgi
from support.clock import Clock

#: by client IP (a lane, on the memory store), by file name (a path parameter), by tenant
#: (a header), by API key with an anonymous plan; every refusal shows the path and IP
POLICY = """\
version: 1
limits:
  by_ip: {by: ip, rate: 3/minute}
  by_file: {by: "path:name", rate: 3/minute}
  by_tenant: {by: "header:X-Tenant", rate: 3/minute}
  by_key: {by: api_key, rate: 3/minute}
plans:
  anonymous: {}
anonymous_plan: anonymous
keys:
  - {key: k1, id: k1}
categories:
  - {name: lane, match: /lane/**, charge: [by_ip]}
  - {name: files, match: "/files/{name}", charge: [by_file], require_key: false}
  - {name: tenants, match: /tenants/**, charge: [by_tenant], require_key: false}
  - {name: api, match: /api/**, charge: [by_key]}
responses:
  rate_limited:
    body: {error: too_many, path: "{path}", ip: "{ip}"}
"""

DUE = [200, 200, 200, 429]


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def raw_scope(
    path: str, headers: list[tuple[bytes, bytes]] | None = None, ip: str = "203.0.113.7"
) -> dict[str, Any]:
    """An ASGI scope as a server that decodes the path with surrogateescape builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": (ip, 50000),
        "server": ("testserver", 80),
    }


def status_of(messages: list[Message]) -> int:
    return int(next(m for m in messages if m["type"] == "http.response.start")["status"])


def body_of(messages: list[Message]) -> Any:
    return json.loads(b"".join(m.get("body", b"") for m in messages if "body" in m))


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
async def any_store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Store]:
    """The memory store (whose lanes take IP-only routes) or a real Redis (general path)."""
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    store = RedisStore.from_url(request.getfixturevalue("redis_url"), clock=clock, timeout=2.0)
    yield store
    await store.aclose()
    assert (store.errors, store.degraded) == (0, False)  # never taken for an outage


@pytest.fixture
def app(any_store: Store) -> asgi.RateLimitMiddleware:
    return asgi.RateLimitMiddleware(ok, policy=make_policy(POLICY), store=any_store)


async def answers(app: asgi.RateLimitMiddleware, scope: dict[str, Any]) -> list[list[Message]]:
    return [await call_asgi(app, dict(scope)) for _ in range(4)]


@pytest.mark.parametrize("route", ["/lane", "/api"])
async def test_a_path_with_an_undecodable_byte_is_limited_and_its_refusal_renders(
    app: asgi.RateLimitMiddleware, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    replies = await answers(app, raw_scope(f"{route}/report-\udcff.pdf"))

    assert [status_of(reply) for reply in replies] == DUE
    assert body_of(replies[-1]) == {
        "error": "too_many",
        "path": f"{route}/report-\ufffddcff.pdf",
        "ip": "203.0.113.7",
    }
    assert not [record for record in caplog.records if record.name == "ratekeeper.redis"]


async def test_undecodable_path_parameters_are_counters_of_their_own(
    app: asgi.RateLimitMiddleware,
) -> None:
    ff = await answers(app, raw_scope("/files/\udcff"))
    fe = await answers(app, raw_scope("/files/\udcfe"))
    # what "\udcff" is escaped to, sent as real text: another file again
    escaped = await answers(app, raw_scope("/files/\ufffddcff"))

    for replies in (ff, fe, escaped):
        assert [status_of(reply) for reply in replies] == DUE


async def test_a_client_address_that_is_not_text_is_limited_and_shown_escaped(
    app: asgi.RateLimitMiddleware,
) -> None:
    replies = await answers(app, raw_scope("/lane/x", ip="\udcff"))

    assert [status_of(reply) for reply in replies] == DUE
    assert body_of(replies[-1])["ip"] == "\ufffddcff"


@pytest.mark.parametrize("value", [b"\xff\xfe", b"\xed\xa0\x80", b"k1\xff", b"\xc3\xbf"], ids=repr)
async def test_an_api_key_that_is_not_utf8_is_an_unknown_key(
    app: asgi.RateLimitMiddleware, value: bytes
) -> None:
    replies = await answers(app, raw_scope("/api/x", [(b"x-api-key", value)]))

    assert [status_of(reply) for reply in replies] == [401] * 4


async def test_a_counted_header_that_is_not_utf8_is_limited_by_its_bytes(
    app: asgi.RateLimitMiddleware,
) -> None:
    ff = await answers(app, raw_scope("/tenants/x", [(b"x-tenant", b"acme\xff")]))
    fe = await answers(app, raw_scope("/tenants/x", [(b"x-tenant", b"acme\xfe")]))

    assert [status_of(reply) for reply in ff] == DUE
    assert [status_of(reply) for reply in fe] == DUE


# WSGI: PEP 3333 carries the path's bytes as latin-1


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def wsgi_answers(middleware: wsgi.RateLimitMiddleware, path_info: str) -> list[tuple[str, bytes]]:
    """Four requests for ``path_info``: the status code and body of each."""
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status[:3])
        return lambda data: None

    bodies = []
    for _ in range(4):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path_info, "REMOTE_ADDR": "192.0.2.1"}
        bodies.append(b"".join(middleware(environ, start_response)))
    return list(zip(statuses, bodies, strict=True))


def test_wsgi_paths_with_different_undecodable_bytes_are_counted_apart(
    store: MemoryStore,
) -> None:
    middleware = wsgi.RateLimitMiddleware(hello, policy=make_policy(POLICY), store=store)

    ff = wsgi_answers(middleware, "/files/\xff")  # the byte 0xFF, as PEP 3333 carries it
    fe = wsgi_answers(middleware, "/files/\xfe")
    replacement = wsgi_answers(middleware, "/files/\xef\xbf\xbd")  # U+FFFD, sent as UTF-8

    for replies in (ff, fe, replacement):
        assert [int(status) for status, _ in replies] == DUE
    assert json.loads(ff[-1][1])["path"] == "/files/\ufffddcff"
    assert json.loads(replacement[-1][1])["path"] == "/files/\ufffd\ufffd"


def test_a_wsgi_server_that_passes_text_instead_of_latin1_gets_answers(
    store: MemoryStore,
) -> None:
    middleware = wsgi.RateLimitMiddleware(hello, policy=make_policy(POLICY), store=store)

    replies = wsgi_answers(middleware, "/lane/\udcff\u20ac")

    assert [int(status) for status, _ in replies] == DUE
    assert json.loads(replies[-1][1])["path"] == "/lane/\ufffddcff\u20ac"

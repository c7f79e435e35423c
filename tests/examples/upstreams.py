"""The four providers' APIs as tiny upstream apps, one ASGI (Starlette) and one WSGI.

The middleware under test sits in front of these; they answer as SEEDS.md's
providers would, so that what reaches a client is what a real deployment sends:

- every route answers JSON with the upstream's own status (scanner queues a
  scan with 202, the others answer 200);
- utmstack's login ``POST /api/authenticate`` checks credentials: 200 with the
  right password, 401 with a wrong one or none, 403 for a disabled account,
  400 for a body that is not JSON credentials; the middleware feeds those
  statuses to the login lockout;
- flowcms's ``GET /api/export`` streams its body in chunks and does not finish
  until the test says so: the request stays in flight, holding a concurrency
  lease, as long as the test wants. With ``?fail=before`` it raises before
  answering, with ``?fail=during`` after its first chunk (a crashing upstream).

Every answer of the upstream carries ``X-Upstream: <example>``: a response
without it was written by the middleware (a refusal). The answers are computed
once, by :func:`answer`, for both faces.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

__all__ = [
    "EXPORT_CHUNKS",
    "LOGIN_BODIES",
    "UPSTREAM_HEADER",
    "AsgiUpstream",
    "UpstreamError",
    "WsgiUpstream",
    "answer",
]

#: names the upstream that wrote a response; the middleware's refusals lack it
UPSTREAM_HEADER = "X-Upstream"

#: utmstack's accounts: username -> (password, enabled)
ACCOUNTS = {"admin": ("correct horse", True), "analyst": ("battery staple", True),
            "former-employee": ("still remembered", False)}  # fmt: skip

#: a login body per upstream answer: what a client sends to get that status
LOGIN_BODIES: dict[int, bytes] = {
    200: b'{"username": "admin", "password": "correct horse"}',
    401: b'{"username": "admin", "password": "guess"}',
    403: b'{"username": "former-employee", "password": "still remembered"}',
    400: b"username=admin&password=guess",
}

#: flowcms's streamed export: these chunks, the last one sent when released
EXPORT_CHUNKS = (b'{"page": 1}\n', b'{"page": 2}\n', b'{"page": 3}\n')
EXPORT_PATH = "/api/export"


class UpstreamError(RuntimeError):
    """What the export raises when asked to fail."""


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _login(body: bytes) -> tuple[int, bytes]:
    try:
        sent = json.loads(body) if body else {}
    except ValueError:
        sent = None
    if not isinstance(sent, dict):
        return 400, _json({"status": 400, "error": "Bad Request", "message": "JSON expected"})
    account = ACCOUNTS.get(str(sent.get("username")))
    if account is None or sent.get("password") != account[0]:
        return 401, _json({"status": 401, "error": "Unauthorized", "message": "Bad credentials"})
    if not account[1]:
        return 403, _json({"status": 403, "error": "Forbidden", "message": "Account disabled"})
    return 200, _json({"id_token": "token-of-" + str(sent["username"])})


def answer(example: str, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """``(status, JSON body)`` of the upstream ``example`` for one request."""
    if example == "utmstack" and (method, path) == ("POST", "/api/authenticate"):
        return _login(body)
    if example == "scanner" and (method, path) == ("POST", "/api/scans"):
        return 202, _json({"scan": {"status": "queued"}})
    if example == "flowcms" and path == "/graphql":
        return 200, _json({"data": {"pages": []}})
    return 200, _json({"example": example, "method": method, "path": path})


def _headers(example: str) -> dict[str, str]:
    return {UPSTREAM_HEADER: example}


class AsgiUpstream:
    """The ASGI upstream of ``example``, with its export gates.

    A plain ASGI callable built on Starlette's request and response classes (no
    router: every path, however spelled, reaches :func:`answer`). A request to
    ``GET /api/export?id=N`` sends its first chunk, then waits until
    :meth:`release` ``(N)`` before sending the rest; ``started`` holds the ids
    whose first chunk is out, ``finished`` those whose last chunk is.
    """

    def __init__(self, example: str) -> None:
        self.example = example
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self._gates: dict[str, asyncio.Event] = {}

    def gate(self, request_id: str) -> asyncio.Event:
        return self._gates.setdefault(request_id, asyncio.Event())

    def release(self, request_id: str) -> None:
        self.gate(request_id).set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        request = Request(scope, receive)
        response: Response
        if (request.method, scope["path"]) == ("GET", EXPORT_PATH):
            fail = request.query_params.get("fail")
            if fail == "before":
                raise UpstreamError("export failed before answering")
            response = self._export(request.query_params.get("id", ""), fail == "during")
        else:
            status, body = answer(self.example, request.method, scope["path"], await request.body())
            response = Response(body, status, _headers(self.example), "application/json")
        await response(scope, receive, send)

    def _export(self, request_id: str, fail: bool) -> StreamingResponse:
        gate = self.gate(request_id)

        async def chunks() -> AsyncIterator[bytes]:
            yield EXPORT_CHUNKS[0]
            self.started.add(request_id)
            if fail:
                raise UpstreamError("export failed half-way")
            await gate.wait()
            for chunk in EXPORT_CHUNKS[1:]:
                yield chunk
            self.finished.add(request_id)

        return StreamingResponse(chunks(), 200, _headers(self.example), "application/x-ndjson")


class WsgiUpstream:
    """The WSGI upstream of ``example``; ``GET /api/export`` streams lazily.

    The export's body is a generator: the client pulls each chunk, so a
    response that has not been read to the end is still in flight. ``closed``
    counts exports whose body was closed (read to the end or abandoned).
    """

    def __init__(self, example: str) -> None:
        self.example = example
        self.closed = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if (method, path) == ("GET", EXPORT_PATH):
            fail = parse_qs(environ.get("QUERY_STRING", "")).get("fail", [""])[0]
            if fail == "before":
                raise UpstreamError("export failed before answering")
            start_response("200 OK", [("Content-Type", "application/x-ndjson"),
                                      *_headers(self.example).items()])  # fmt: skip
            return self._export(fail == "during")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        status, payload = answer(self.example, method, path, body)
        start_response(f"{status} {_REASONS[status]}", [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            *_headers(self.example).items(),
        ])  # fmt: skip
        return iter([payload])

    def _export(self, fail: bool) -> Iterator[bytes]:
        try:
            yield EXPORT_CHUNKS[0]
            if fail:
                raise UpstreamError("export failed half-way")
            yield from EXPORT_CHUNKS[1:]
        finally:
            with self._lock:
                self.closed += 1


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden"}  # fmt: skip

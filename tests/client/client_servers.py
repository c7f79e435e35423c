"""What the client's tests talk to: a scripted upstream, ``ratekeeper proxy`` before it.

``ScriptedUpstream`` is a plain ASGI app: each path answers the statuses and
fields its script gives, in order (the last one repeats; unscripted paths
answer 200), and it records every request it got (method, path, body, time).
``proxy_for`` runs the real ``ratekeeper proxy`` (a subprocess, on a free
loopback port) with a policy written for the test, in front of an upstream.
``WireLog`` wraps a real transport and records every answer on the wire.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.loopback import LoopbackProcess

__all__ = ["AsyncWireLog", "Hit", "ScriptedUpstream", "WireLog", "policy_text", "proxy_for"]

Scripted = tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    body: bytes
    at: float


@dataclass
class ScriptedUpstream:
    scripts: dict[str, list[Scripted]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)

    def hits_of(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        self.hits.append(Hit(scope["method"], path, body, time.monotonic()))
        script = self.scripts.get(path, [])
        count = len(self.hits_of(path))
        status, fields = script[min(count, len(script)) - 1] if script else (200, {})
        payload = json.dumps({"path": path, "count": count}).encode()
        headers = [(b"content-type", b"application/json")]
        headers += [(k.lower().encode(), v.encode()) for k, v in fields.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def policy_text(rate: str, style: str = "x-ratelimit") -> str:
    """One limit by client IP on every path, an exact sliding log, ``style`` headers."""
    return textwrap.dedent(f"""\
        version: 1
        name: client-test
        defaults: {{algorithm: sliding_log}}
        limits:
          api: {{by: ip, rate: "{rate}"}}
        categories:
          - {{name: api, match: "/**", charge: [api]}}
        headers: {{style: {style}}}
        """)


@contextmanager
def proxy_for(upstream_url: str, policy: str, directory: Path) -> Iterator[LoopbackProcess]:
    """The real ``ratekeeper proxy`` in front of ``upstream_url``, limited by ``policy``."""
    directory.mkdir(parents=True, exist_ok=True)
    policy_file = directory / "policy.yaml"
    policy_file.write_text(policy)

    def command(port: int, _: Path) -> list[str]:
        return [sys.executable, "-m", "ratekeeper", "proxy", "--upstream", upstream_url,
                "--policy", str(policy_file), "--registry", "none",
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip

    with LoopbackProcess("ratekeeper-proxy", command, directory) as process:
        yield process


@dataclass(frozen=True)
class Wire:
    """One answer on the wire: which request (its id), when it was sent, its status."""

    request: int
    sent: float
    status: int
    retry_after: str | None


class _Log:
    def __init__(self) -> None:
        self.wire: list[Wire] = []
        self._lock = threading.Lock()

    def record(self, request: httpx.Request, sent: float, response: httpx.Response) -> None:
        with self._lock:
            self.wire.append(
                Wire(id(request), sent, response.status_code, response.headers.get("retry-after"))
            )

    def statuses(self) -> list[int]:
        return [wire.status for wire in self.wire]

    def count(self, status: int) -> int:
        return self.statuses().count(status)

    def sends_of(self, request: int) -> Sequence[Wire]:
        return [wire for wire in self.wire if wire.request == request]


class WireLog(httpx.BaseTransport, _Log):
    """A real ``httpx.HTTPTransport`` whose every answer is recorded."""

    def __init__(self) -> None:
        _Log.__init__(self)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = self.inner.handle_request(request)
        self.record(request, sent, response)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncWireLog(httpx.AsyncBaseTransport, _Log):
    """The asyncio twin of :class:`WireLog`."""

    def __init__(self) -> None:
        _Log.__init__(self)
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = await self.inner.handle_async_request(request)
        self.record(request, sent, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

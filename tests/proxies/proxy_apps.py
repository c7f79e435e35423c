"""The two servers a proxy sits between in these tests: the decision service and an upstream.

The decision service runs as a process of its own on a free loopback port,
started by ONE function, :func:`decision_service`: ``ratekeeper serve`` with
the test's policy, a memory store on the real clock and a registry of its own.

The upstream is a plain ASGI app served in the test process
(:class:`~support.loopback.ThreadedServer`): it answers every path with JSON
and ``X-Upstream``, and keeps what it received.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.loopback import LoopbackProcess

__all__ = [
    "UPSTREAM_HEADER",
    "Received",
    "Upstream",
    "decision_service",
]

#: the header the upstream sets on its answers: a response carrying it reached the upstream
UPSTREAM_HEADER = "X-Upstream"


def decision_service(policy: Path, directory: Path) -> LoopbackProcess:
    """``ratekeeper serve`` deciding with ``policy``, to start on a free loopback port.

    The one place that says how the service starts: the real command, as an
    operator runs it, with a registry of its own in ``directory``.
    """

    def command(port: int, directory: Path) -> list[str]:
        return [
            sys.executable, "-m", "ratekeeper", "serve", "--policy", str(policy),
            "--host", "127.0.0.1", "--port", str(port),
            "--registry", f"sqlite:///{directory / 'registry.sqlite3'}",
        ]  # fmt: skip

    return LoopbackProcess("ratekeeper", command, directory, env={})


@dataclass(frozen=True)
class Received:
    """One request as the upstream received it (header names lower-case)."""

    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


class Upstream:
    """The API behind the proxy: every request gets 200, JSON naming it, and ``X-Upstream``.

    ``received``: each request that reached it, as :class:`Received`.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        raw_path = scope["raw_path"].decode("latin-1")
        self.received.append(Received(scope["method"], raw_path, headers, body))
        answer = json.dumps(
            {"upstream": True, "method": scope["method"], "path": raw_path}
        ).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(answer)),
            (UPSTREAM_HEADER.lower().encode(), b"yes"),
        ]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

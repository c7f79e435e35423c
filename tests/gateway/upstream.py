"""The API behind the gateway in these tests: a plain ASGI app that says what it received.

Served by a real uvicorn on a loopback port (``conftest.serving``), in the
test's own event loop, so a test can hold a response open on an
:class:`asyncio.Event` and read what arrived. Routes (an ``/api`` prefix is
ignored, so the example policies' categories can be matched):

``/echo``      200, JSON: method, request target as received, header fields, body size
``/upload``    reads the body chunk by chunk (each recorded in ``uploads[id]`` as it
               arrives), then 200 with the chunk count
``/download``  sends ``DOWNLOAD[0]``, waits for ``release(id)``, sends ``DOWNLOAD[1]``
``/status/N``  status N, a JSON body and a field of its own (``X-Upstream-Says``)
``/slow``      never answers (until its client, the gateway, goes away)
``/own-limits``  200 with its own ``X-RateLimit-Limit`` and ``-Remaining``
``/hop``       200 with hop-by-hop fields set
``/authenticate``  POST: 200 for the body ``good``, 401 for anything else

Every answer carries ``X-Upstream: yes``. ``hits`` counts requests per path;
``ended`` holds the ids of downloads that ran to their end, ``gone`` those of
downloads and slow requests whose connection the gateway closed first (a
request cancelled upstream).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

__all__ = ["DOWNLOAD", "TestUpstream"]

Message = MutableMapping[str, Any]
DOWNLOAD = (b"first chunk\n", b"second chunk\n")


async def _released_before_gone(
    gate: asyncio.Event, receive: Callable[[], Awaitable[Message]]
) -> bool:
    """Wait for ``gate`` or the client's disconnect, whichever is first: ``True`` for the gate."""

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    released = asyncio.ensure_future(gate.wait())
    disconnected = asyncio.ensure_future(gone())
    done, pending = await asyncio.wait({released, disconnected}, return_when="FIRST_COMPLETED")
    for task in pending:
        task.cancel()
    return released in done


class TestUpstream:
    """The upstream app; its records are read by the tests."""

    __test__ = False  # not a test class for pytest

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.uploads: dict[str, list[bytes]] = {}
        self.started: set[str] = set()
        self.ended: set[str] = set()
        self.gone: set[str] = set()
        self._gates: dict[str, asyncio.Event] = {}

    def gate(self, request_id: str) -> asyncio.Event:
        return self._gates.setdefault(request_id, asyncio.Event())

    def release(self, request_id: str) -> None:
        self.gate(request_id).set()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].removeprefix("/api")
        self.hits[path] += 1
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        request_id = query.get("id", "")
        ours = [(b"x-upstream", b"yes")]

        async def answer(status: int, payload: Any, extra: list[tuple[bytes, bytes]]) -> None:
            body = json.dumps(payload).encode()
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", b"%d" % len(body)), *ours, *extra]  # fmt: skip
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        if path == "/upload":
            chunks = self.uploads.setdefault(request_id, [])
            while True:
                message = await receive()
                if message.get("body"):
                    chunks.append(message["body"])
                if not message.get("more_body"):
                    break
            await answer(200, {"chunks": len(chunks), "bytes": sum(map(len, chunks))}, [])
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/download":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), *ours]})  # fmt: skip
            await send({"type": "http.response.body", "body": DOWNLOAD[0], "more_body": True})
            self.started.add(request_id)
            if await _released_before_gone(self.gate(request_id), receive):
                await send({"type": "http.response.body", "body": DOWNLOAD[1]})
                self.ended.add(request_id)
            else:
                self.gone.add(request_id)
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            await answer(
                status, {"upstream_status": status}, [(b"x-upstream-says", b"%d" % status)]
            )
        elif path == "/slow":
            self.started.add(request_id)
            await _released_before_gone(asyncio.Event(), receive)
            self.gone.add(request_id)
        elif path == "/own-limits":
            await answer(200, {}, [(b"x-ratelimit-limit", b"5000"),
                                   (b"x-ratelimit-remaining", b"4999")])  # fmt: skip
        elif path == "/hop":
            await answer(200, {}, [
                (b"connection", b"x-hop-named"), (b"x-hop-named", b"1"),
                (b"keep-alive", b"timeout=5"), (b"proxy-authenticate", b"Basic"),
                (b"trailer", b"x-checksum"), (b"upgrade", b"h2c"), (b"x-end-to-end", b"kept"),
            ])  # fmt: skip
        elif path == "/authenticate" and scope["method"] == "POST":
            if body == b"good":
                await answer(200, {"token": "t"}, [])
            else:
                await answer(401, {"error": "bad credentials"}, [])
        else:
            target = scope.get("raw_path", b"") + (
                b"?" + scope["query_string"] if scope["query_string"] else b""
            )
            await answer(200, {
                "method": scope["method"],
                "target": target.decode("latin-1"),
                "headers": [[n.decode("latin-1"), v.decode("latin-1")]
                            for n, v in scope["headers"]],
                "body_bytes": len(body),
            }, [])  # fmt: skip

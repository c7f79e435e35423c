"""The proxying ASGI app: every request to the upstream, bodies streamed both ways.

One pool of upstream connections (an ``httpx.AsyncHTTPTransport``) serves
every request: opened on the first request or at lifespan start-up, closed at
lifespan shutdown (or :meth:`ProxyApp.aclose`). Requests go to the transport
itself, not through an ``httpx.AsyncClient``: a client would follow redirects,
keep the upstream's cookies in one jar shared by every caller of the gateway
and read proxy settings from the environment, none of which a reverse proxy
may do; what is left (the pool, timeouts, HTTP/1.1) is the transport's.

A request's body is read from ASGI ``receive`` only as the upstream
connection takes it (nothing is buffered beyond the message in hand): with the
client's ``Content-Length`` when it sent one, else chunked. The response
streams back the same way, each chunk sent as it arrives. The request target
is the client's, byte for byte (``raw_path`` and query, after the upstream
URL's own path, if any): the upstream sees dot segments and percent-encoding
as sent, as the limiter in front judged them.

A client that goes away cancels its upstream request, whether the upstream is
still thinking or streaming: a watcher waits for ``http.disconnect`` once the
request body is read, and cancels the exchange. The middleware around this
app then gives the request's concurrency leases back.

When the upstream gives no answer the gateway answers itself with a JSON error
(``_errors.py``): 502 when the connection is refused or the upstream breaks
the protocol, 504 when it does not connect or answer within ``timeout``. The
timeout bounds each wait on the upstream (connecting, sending, each read), not
a whole response, so a long stream that keeps moving is never cut. An upstream
that breaks off after its status line was sent cannot be answered for: the
client's response ends short, as the upstream's did.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from ._errors import BAD_GATEWAY, BAD_REQUEST, GATEWAY_TIMEOUT, PAYLOAD_TOO_LARGE, send_error
from ._headers import request_headers, response_headers

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "ProxyApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_log = logging.getLogger("ratekeeper.gateway")

#: seconds the gateway waits on the upstream (to connect, to send, for each read) before a 504
DEFAULT_TIMEOUT = 30.0
#: the upstream pool: connections at most, kept alive between requests, and for how long
DEFAULT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200,
                              keepalive_expiry=5.0)  # fmt: skip
_END = {"type": "http.response.body", "body": b""}
#: the pool is this many httpcore pools, taken in turn: httpcore's pool looks at every
#: connection it holds (a poll(2) each) on every request, so its cost per request grows
#: with the connections open; small pools keep it flat (bench_gateway.py, 32 connections)
SHARDS = 8


class ClientGoneError(Exception):
    """The client disconnected while its request body was being sent on."""


class BodyTooLargeError(Exception):
    """The request body went over the configured limit."""


class RequestBody:
    """The client's request body, read from ``receive`` as the upstream connection takes it.

    ``finished`` is set once the whole body is read (at once when there is
    none): from then on ``receive`` only says whether the client is still there.
    """

    __slots__ = ("_first", "_limit", "_read", "_receive", "finished")

    def __init__(self, receive: Receive, limit: int | None, first: Message | None = None) -> None:
        self._receive = receive
        self._limit = limit
        self._first = first
        self._read = 0
        self.finished = anyio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive; raises when the client goes or sends too much."""
        message = self._first
        self._first = None
        while True:
            if message is None:
                message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGoneError
            chunk: bytes = message.get("body", b"")
            if chunk:
                self._read += len(chunk)
                if self._limit is not None and self._read > self._limit:
                    raise BodyTooLargeError
                yield chunk
            if not message.get("more_body", False):
                self.finished.set()
                return
            message = None


async def _cancel_when_gone(body: RequestBody, receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` (the upstream exchange) when the client disconnects."""
    await body.finished.wait()
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class ProxyApp:
    """An ASGI app sending every HTTP request to ``upstream`` and its answer back.

    ``upstream`` is ``http://host:port`` or ``https://...``, optionally with a
    path prefix put before every request's path. ``timeout``: seconds of each
    wait on the upstream before a 504. ``limits``: the connection pool
    (:data:`DEFAULT_LIMITS`). ``preserve_host``: send the client's ``Host``
    instead of the upstream's. ``max_body_size``: bytes of request body
    allowed (413 above it); ``None``, the default, is no limit. ``transport``:
    another ``httpx.AsyncBaseTransport`` to send through (tests, TLS settings).

    WebSocket connections are not proxied (refused); lifespan events open and
    close the upstream pool.
    """

    def __init__(
        self,
        upstream: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        preserve_host: bool = False,
        max_body_size: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = httpx.URL(upstream)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"the upstream must be an http:// or https:// URL, got {upstream!r}")
        if url.query or url.fragment:
            raise ValueError(f"the upstream URL takes no query or fragment, got {upstream!r}")
        if timeout <= 0:
            raise ValueError(f"the timeout must be a positive number of seconds, got {timeout!r}")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"max_body_size must be >= 0, got {max_body_size!r}")
        self.upstream = str(url)
        self._url = url.copy_with(path="/")
        self._prefix = url.raw_path.rstrip(b"/")
        self.timeout = timeout
        self._timeouts = httpx.Timeout(timeout).as_dict()
        self._limits = limits
        self._preserve_host = preserve_host
        self._max_body_size = max_body_size
        self._given_transport = transport
        self._shards: list[httpx.AsyncBaseTransport] = []
        self._turn = 0

    # the upstream pool

    def _pool(self) -> httpx.AsyncBaseTransport:
        shards = self._shards
        if not shards:
            shards = self._shards = self._open_shards()
        self._turn = turn = (self._turn + 1) % len(shards)
        return shards[turn]

    def _open_shards(self) -> list[httpx.AsyncBaseTransport]:
        if self._given_transport is not None:
            return [self._given_transport]
        limits = self._limits
        count = SHARDS

        def share(total: int | None) -> int | None:
            return None if total is None else max(1, -(-total // count))

        each = httpx.Limits(
            max_connections=share(limits.max_connections),
            max_keepalive_connections=share(limits.max_keepalive_connections),
            keepalive_expiry=limits.keepalive_expiry,
        )
        return [httpx.AsyncHTTPTransport(limits=each, trust_env=False) for _ in range(count)]

    async def aclose(self) -> None:
        """Close the upstream connections (the next request opens a new pool)."""
        shards, self._shards = self._shards, []
        for transport in shards:
            await transport.aclose()

    # ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._proxy(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._pool()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def target(self, scope: Scope) -> bytes:
        """The request target sent upstream: the prefix, the client's raw path and query."""
        path: bytes | None = scope.get("raw_path")
        if not path:
            path = quote(scope["path"], safe="/:@!$&'()*+,;=~").encode("ascii")
        query: bytes = scope.get("query_string", b"")
        target = self._prefix + path if self._prefix else path
        return target + b"?" + query if query else target

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        fields = scope["headers"]
        length: bytes | None = None
        for name, value in fields:
            if name == b"content-length":
                length = value
                break
        client = scope.get("client")
        headers = request_headers(
            fields,
            client=client[0] if client else None,
            scheme=scope.get("scheme", "http"),
            preserve_host=self._preserve_host,
        )
        limit = self._max_body_size
        content: AsyncIterator[bytes] | None = None
        if length is not None:
            size = int(length) if length.isdigit() else -1
            if size < 0:
                await send_error(send, BAD_REQUEST, "Content-Length is not a number")
                return
            if limit is not None and size > limit:
                await send_error(send, PAYLOAD_TOO_LARGE, f"the body is over {limit} bytes")
                return
            body = RequestBody(receive, limit)
            if size:
                content = body.chunks()
            else:
                body.finished.set()
        else:  # chunked, or no body at all: the first message says which
            first = await receive()
            if first["type"] == "http.disconnect":
                return
            body = RequestBody(receive, limit, first)
            if first.get("body") or first.get("more_body", False):
                content = body.chunks()
            else:
                body.finished.set()
        request = httpx.Request(
            scope["method"],
            self._url,
            headers=headers,
            content=content,
            extensions={"target": self.target(scope), "timeout": self._timeouts},
        )
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_when_gone, body, receive, group.cancel_scope)
            try:
                await self._exchange(request, send)
            finally:
                group.cancel_scope.cancel()

    async def _exchange(self, request: httpx.Request, send: Send) -> None:
        try:
            response = await self._pool().handle_async_request(request)
        except ClientGoneError:
            return
        except BodyTooLargeError:
            too_large = f"the body is over {self._max_body_size} bytes"
            await send_error(send, PAYLOAD_TOO_LARGE, too_large)
            return
        except httpx.TimeoutException:
            await send_error(
                send, GATEWAY_TIMEOUT, f"the upstream did not answer within {self.timeout:g} s"
            )
            return
        except httpx.LocalProtocolError as error:
            await send_error(send, BAD_REQUEST, f"the request cannot be sent on: {error}")
            return
        except httpx.TransportError as error:
            _log.warning("upstream %s: %s", self.upstream, error or type(error).__name__)
            await send_error(send, BAD_GATEWAY, "the upstream could not be reached")
            return
        try:
            await self._relay(response, send)
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def _relay(self, response: httpx.Response, send: Send) -> None:
        """The upstream's response to the client, each chunk as it comes."""
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response_headers(response.headers.raw),
            }
        )
        left = _content_length(response)
        ended = False
        try:
            async for chunk in response.aiter_raw():
                if ended or not chunk:
                    continue
                if left is not None:
                    left -= len(chunk)
                    if left <= 0:  # the whole body: say so with it, one message less
                        ended = True
                        await send({"type": "http.response.body", "body": chunk})
                        continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.TransportError as error:
            _log.warning("upstream %s broke off a response: %s", self.upstream, error)
            return  # the client's response ends short, as the upstream's did
        except OSError:  # the client went away (ASGI 2.4 servers raise from send)
            return
        if not ended:
            await send(_END)

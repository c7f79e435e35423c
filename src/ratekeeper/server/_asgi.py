"""Reading a request body and sending an answer on the raw ASGI calls, for the hot paths.

``POST /v1/check`` and ``GET /v1/authorize`` are called once per request of
the APIs the service guards, so they skip Starlette's ``Request`` and
``Response`` objects (their wrapping costs about as much as deciding with the
memory store: docs/performance-service.md) and speak ASGI here. The other
routes use Starlette as usual, and read their bodies with the same
:func:`read_body`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "JSON_TYPE",
    "BodyTooLargeError",
    "ClientGoneError",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "read_body",
    "send_answer",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: the content type of every JSON answer
JSON_TYPE = (b"content-type", b"application/json")


class BodyTooLargeError(Exception):
    """The body is over the size the caller allows (by its ``Content-Length``, or as read)."""


class ClientGoneError(Exception):
    """The client went away before its body was read: there is no one to answer."""


async def read_body(scope: Scope, receive: Receive, most: int) -> bytes:
    """The request body, refused past ``most`` bytes without reading the rest.

    A ``Content-Length`` over ``most`` (or not a number) is refused before
    any of the body is read.
    """
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > most):
            raise BodyTooLargeError
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the whole body in one message: the usual case
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        if len(body) > most:
            raise BodyTooLargeError
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > most:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


async def send_answer(
    scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """One whole answer: ``Content-Length`` added unless ``headers`` have it; no body for HEAD."""
    if not any(name == b"content-length" for name, _ in headers):
        headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

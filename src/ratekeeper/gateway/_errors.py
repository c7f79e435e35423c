"""The gateway's own answers, when the upstream gives none: JSON errors.

``{"error": {"code": ..., "message": ...}}``, the shape the decision service
uses for its errors, so a client reads one shape whoever wrote it:

=====  ===================  ====================================================
502    ``bad_gateway``      the upstream refused the connection, or broke the protocol
504    ``gateway_timeout``  the upstream did not connect, accept or answer in time
413    ``payload_too_large``  a body over the configured limit (none by default)
400    ``bad_request``      a request the gateway cannot put on the wire
=====  ===================  ====================================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "BAD_GATEWAY",
    "BAD_REQUEST",
    "GATEWAY_TIMEOUT",
    "PAYLOAD_TOO_LARGE",
    "error_body",
    "send_error",
]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BAD_GATEWAY = (502, "bad_gateway")
GATEWAY_TIMEOUT = (504, "gateway_timeout")
PAYLOAD_TOO_LARGE = (413, "payload_too_large")
BAD_REQUEST = (400, "bad_request")


def error_body(code: str, message: str) -> bytes:
    """The JSON body of one of the gateway's errors."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def send_error(send: Send, error: tuple[int, str], message: str) -> None:
    """Answer with ``error`` (status, code) and ``message``, as a whole JSON response."""
    status, code = error
    body = error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""The admin API's bearer token: checked first, in constant time, with one answer for "no".

Every admin request is authenticated before anything else is read: its
path parameters, query and body are not looked at, and nothing changes,
until the token matched. A missing header, another scheme, a wrong token
all get the same 401 (``WWW-Authenticate: Bearer``), so an answer tells a
caller nothing about how close it came. The comparison is
:func:`hmac.compare_digest` on the bytes of both tokens, which takes the same
time wherever they differ.

The token itself is never logged, echoed or put in an error.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["error_response", "require_admin"]

_REALM = 'Bearer realm="ratekeeper admin"'


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``{"error": {"code": ..., "message": ...}}``, as every admin error is written."""
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def require_admin(request: Request, token: str | None) -> Response | None:
    """``None`` when ``request`` carries ``Authorization: Bearer <token>``, else its answer.

    ``token`` ``None`` (no admin token configured): the admin API is off, and
    every request gets 404, as if it were not there.
    """
    if token is None:
        return error_response(
            404, "not_found", "the admin API is off: no admin token is configured"
        )
    presented = request.headers.get("authorization", "")
    scheme, _, credentials = presented.partition(" ")
    given = credentials.strip().encode("latin-1", "replace")
    expected = token.encode("utf-8")
    # compared whatever the scheme, so that a wrong scheme costs what a wrong token costs
    matched = hmac.compare_digest(given, expected)
    if matched and scheme.lower() == "bearer":
        return None
    return error_response(
        401,
        "unauthorized",
        "missing or wrong admin token: send Authorization: Bearer <token>",
        {"WWW-Authenticate": _REALM},
    )

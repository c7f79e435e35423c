"""``GET /v1/authorize``: forward-auth (nginx ``auth_request``, Traefik, Caddy ``forward_auth``).

A reverse proxy asks this route, before it forwards a request upstream,
whether the request may pass. The proxy says what the request is in headers:
nginx with ``X-Original-Method`` and ``X-Original-URI`` (set by the shipped
``deploy/nginx/ratekeeper.conf``), Traefik and Caddy with
``X-Forwarded-Method`` and ``X-Forwarded-Uri`` (they always send these). The
URI is percent-decoded here, as a server decodes ``scope["path"]`` for the ASGI
middleware; a path whose bytes are not UTF-8 gets 400. The rest of the
request is read as the middleware reads it: the API key from the policy's key
headers, the client address from the policy's forwarding header when the
proxy (this request's peer) is one of the policy's trusted proxies.

The answer is the decision's: 200 with the rate limit header fields for the
proxy to copy onto its response, or the refusal itself (429, 401, 400, 503;
the policy's body, its content type and ``Retry-After``), which Traefik and
Caddy pass to the client as it is. nginx turns any subrequest status but
2xx, 401 and 403 into a 500, so ``?deny_status=403`` makes every refusal
answer 403 and say its real status in ``X-Ratekeeper-Status``; the shipped
nginx config maps it back (docs/forward-auth.md).

Forward-auth takes no concurrency leases and feeds no lockouts: the proxy
never tells the service when the response ended or what the upstream
answered, so a lease would be held until its TTL and a failed login would
never be counted. A request is decided by its rates, and by any block that
another face sharing the store recorded. Caps and lockouts need the gateway
(``ratekeeper proxy``) or ``/v1/check`` with ``/v1/release`` and ``/v1/report``.

Two pairs of headers could say what the request is, and a proxy writes only
one of them: it passes the other pair on as the client sent it. So a request
that carries both, disagreeing, is refused (400) rather than decided on the
client's word; the shipped configs also drop the pair their proxy does not
write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

from starlette.routing import Route

from ..limiter import AsyncLimiter, PolicyDecision
from ..policy import Policy
from ._asgi import JSON_TYPE, Receive, Scope, Send, send_answer

__all__ = [
    "DENY_STATUS",
    "STATUS_HEADER",
    "AuthorizeService",
    "ForwardedRequestError",
    "authorize_route",
    "forwarded_request",
    "request_path",
]

#: the one status ``?deny_status=`` accepts: nginx passes on 401 and 403 only, and 401 asks
#: the client for credentials
DENY_STATUS = 403
#: the refusal's real status, when ``deny_status`` stands in for it
STATUS_HEADER = "X-Ratekeeper-Status"

#: (method header, URI header): nginx's (set by the shipped config), then Traefik's and Caddy's
_ORIGINAL = (b"x-original-method", b"x-original-uri")
_FORWARDED = (b"x-forwarded-method", b"x-forwarded-uri")
_SPELLED = {
    b"x-original-method": "X-Original-Method",
    b"x-original-uri": "X-Original-URI",
    b"x-forwarded-method": "X-Forwarded-Method",
    b"x-forwarded-uri": "X-Forwarded-Uri",
}
#: each of the four headers to its twin in the other pair
_OTHER_PAIR = {
    **dict(zip(_ORIGINAL, _FORWARDED, strict=True)),
    **dict(zip(_FORWARDED, _ORIGINAL, strict=True)),
}
#: an HTTP method is a token (RFC 9110, 5.6.2); the longest registered one is 17 characters
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}")
_JSON_TYPE = [JSON_TYPE]


class AuthorizeService(Protocol):
    """What the route needs of the running service (``ratekeeper.server.service.Service``).

    Read on every request: a policy reload replaces both.
    """

    @property
    def limiter(self) -> AsyncLimiter: ...

    @property
    def policy(self) -> Policy: ...


class ForwardedRequestError(ValueError):
    """The proxy's headers do not say which request to decide (answered with 400)."""


def forwarded_request(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str]:
    """``(method, decoded path)`` of the request a proxy asks about.

    ``headers``: the request's header fields as ASGI gives them (lower-case
    names, bytes). The URI header picks the pair: ``X-Original-URI`` (nginx),
    else ``X-Forwarded-Uri``; the method comes from the same pair. One of
    these headers sent twice with two values, or present in both pairs with
    two values, is refused: one of the values is the client's.
    """
    asked: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _SPELLED and asked.setdefault(name, value) != value:
            raise ForwardedRequestError(f"{_SPELLED[name]} sent twice, with two values")
    for pair in (_ORIGINAL, _FORWARDED):
        if pair[1] in asked:
            method_header, uri_header = pair
            break
    else:
        raise ForwardedRequestError(
            "missing X-Original-URI (nginx) or X-Forwarded-Uri (Traefik, Caddy): "
            "the proxy must say which request to decide"
        )
    for name in (method_header, uri_header):
        other = _OTHER_PAIR[name]
        if name in asked and other in asked and asked[other] != asked[name]:
            raise ForwardedRequestError(
                f"{_SPELLED[name]} and {_SPELLED[other]} disagree: the proxy writes one, "
                "the other is the client's (drop it in the proxy's config)"
            )
    method = asked.get(method_header)
    if method is None:
        raise ForwardedRequestError(f"missing {_SPELLED[method_header]}")
    if not _METHOD.fullmatch(method):
        raise ForwardedRequestError(f"{_SPELLED[method_header]} is not an HTTP method")
    return method.decode("ascii"), request_path(asked[uri_header], _SPELLED[uri_header])


def request_path(uri: bytes, header: str = "X-Original-URI") -> str:
    """The percent-decoded path of a request target (origin or absolute form), query dropped.

    The bytes a proxy forwards are the client's: they decode as UTF-8 or the
    request is refused (``ForwardedRequestError``), never guessed at.
    """
    target = uri.split(b"?", 1)[0].split(b"#", 1)[0]
    if not target.startswith(b"/"):
        try:
            parts = urlsplit(target.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            parts = None
        if parts is None or not parts.scheme or not parts.netloc:
            raise ForwardedRequestError(f"{header} is not a request path: {_shown(uri)}")
        target = (parts.path or "/").encode("ascii")
    try:
        return unquote_to_bytes(target).decode("utf-8")
    except UnicodeDecodeError:
        raise ForwardedRequestError(
            f"{header} is not UTF-8 once percent-decoded: {_shown(uri)}"
        ) from None


def _shown(value: bytes, limit: int = 80) -> str:
    """A header value quoted in an error message: bytes that are not ASCII escaped, cut short."""
    text = value[:limit].decode("ascii", "backslashreplace")
    return "'" + text + ("...'" if len(value) > limit else "'")


def _deny_status(query: bytes) -> bool:
    """Whether ``?deny_status=403`` asks for nginx's refusals; another value is an error."""
    if not query:
        return False
    values = [value for name, value in parse_qsl(query.decode("latin-1")) if name == "deny_status"]
    if not values:
        return False
    if values != [str(DENY_STATUS)]:
        raise ForwardedRequestError(f"deny_status must be {DENY_STATUS} (nginx passes on 403)")
    return True


def _error_body(message: str) -> bytes:
    return json.dumps({"error": {"code": "invalid_request", "message": message}}).encode()


class _Authorize:
    """The ASGI endpoint: reads the raw scope (no ``Request`` object; it is on the hot path)."""

    __slots__ = ("service",)

    def __init__(self, service: AuthorizeService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        try:
            deny = _deny_status(scope.get("query_string", b""))
        except ForwardedRequestError as error:
            await send_answer(scope, send, 400, _JSON_TYPE, _error_body(str(error)))
            return
        try:
            method, path = forwarded_request(raw_headers)
        except ForwardedRequestError as error:
            await _refuse(scope, send, deny, 400, _JSON_TYPE, _error_body(str(error)))
            return
        limiter = self.service.limiter
        client = scope.get("client")
        decision: PolicyDecision = await limiter.check(
            method=method,
            path=path,
            headers=limiter.compiled.header_reader.from_asgi(raw_headers),
            client_ip=client[0] if client else "",
        )
        if decision.allowed:  # exempt ones too: they carry no header fields
            await send_answer(scope, send, 200, limiter.raw_headers(decision), b"")
            return
        status, headers, body = limiter.answers.refusal_raw(decision)
        await _refuse(scope, send, deny, status, headers, body)


async def _refuse(
    scope: Scope,
    send: Send,
    deny: bool,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    if deny:
        headers = [*headers, (STATUS_HEADER.lower().encode(), b"%d" % status)]
        status = DENY_STATUS
    await send_answer(scope, send, status, headers, body)


def authorize_route(service: AuthorizeService) -> Route:
    """The ``GET /v1/authorize`` route, deciding with ``service.limiter`` (read per request).

    >>> app = Starlette(routes=[authorize_route(service)])  # doctest: +SKIP
    """
    return Route("/v1/authorize", _Authorize(service), methods=["GET"], name="authorize")

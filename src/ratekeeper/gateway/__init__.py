"""The gateway: ratekeeper in front of an API that cannot change, as a reverse proxy.

    from ratekeeper.gateway import build_gateway
    app = build_gateway("policy.yaml", None, "http://127.0.0.1:9000")   # an ASGI app

It is the ASGI middleware (``ratekeeper.integrations.asgi``) around a proxying
ASGI app (:class:`ProxyApp`): requests the policy admits go to the upstream,
bodies streamed both ways, and come back with the rate-limit headers; refusals
are answered by the middleware. ``ratekeeper proxy --upstream URL`` serves it
(docs/gateway.md). Needs the ``server`` extra (httpx); ``import ratekeeper``
does not import this package.
"""

from __future__ import annotations

from ._build import Gateway, build_gateway
from ._errors import error_body
from ._headers import HOP_BY_HOP, request_headers, response_headers
from ._proxy import DEFAULT_LIMITS, DEFAULT_TIMEOUT, ProxyApp

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "HOP_BY_HOP",
    "Gateway",
    "ProxyApp",
    "build_gateway",
    "error_body",
    "request_headers",
    "response_headers",
]

"""``POST /json``: ``ShouldRateLimit`` over plain HTTP, as the reference service offers it.

The reference service (envoyproxy/ratelimit) answers on its HTTP port a
``RateLimitRequest`` written in protobuf's JSON mapping::

    curl -d '{"domain": "messaging", "descriptors": [{"entries": [{"key": "to_number",
             "value": "2061111111"}]}]}' http://127.0.0.1:8080/json

with the ``RateLimitResponse`` in the same mapping (``overallCode``,
``statuses`` ...), status 200 when allowed, 429 over a limit. ``ratekeeper
serve`` answers it the same way, when the policy it starts with reads Envoy's
descriptors (an ``envoy:`` section, or ``--envoy-config``): the same
decision as the gRPC call (the same servicer, on the service's loop), handy
to try a config with curl. A body that is not such a request is 400, a
store failing closed 503; with no ``envoy:`` section in force (a reload
took it away) 404.
"""

from __future__ import annotations

from typing import Any

from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._grpc import RateLimitServicer, UnavailableError, descriptors_of

__all__ = ["json_route"]

_MOST_BODY = 1 << 20  # a request of descriptors is small; more is not one


def json_route(service: Any) -> Route:
    """``POST /json`` on ``service`` (anything with ``policy`` and ``limiter``)."""
    servicer = RateLimitServicer(service)

    async def endpoint(request: Request) -> Response:
        if service.policy.envoy is None:
            return _error(404, "not_found", "the policy in force reads no Envoy descriptors")
        body = await request.body()
        if len(body) > _MOST_BODY:
            return _error(413, "too_large", f"a request body is at most {_MOST_BODY:,} bytes")
        message = rls_pb2.RateLimitRequest()
        try:
            json_format.Parse(body or b"{}", message)
            descriptors = descriptors_of(message)
            peer = request.client.host if request.client is not None else ""
            decision, reading = await servicer.decide(message.domain, descriptors, peer)
        except (json_format.ParseError, ValueError) as error:
            return _error(400, "invalid_request", str(error))
        except UnavailableError:
            return _error(503, "unavailable", "the store cannot decide", {"Retry-After": "1"})
        answer = servicer.answer(decision, reading, descriptors)
        return Response(
            json_format.MessageToJson(answer, indent=None),
            status_code=200 if answer.overall_code == rls_pb2.RateLimitResponse.OK else 429,
            media_type="application/json",
        )

    return Route("/json", endpoint, methods=["POST"])


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )

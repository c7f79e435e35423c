"""The service's Starlette app: decision API, health, metrics, OpenAPI; admin, forward-auth.

Routes (docs/service.md):

==========================  ======================================================
``POST /v1/check``          decide one request (JSON in, the decision's status out)
``POST /v1/check:batch``    decide a list of requests, one by one, in order
``POST /v1/release``        give back a decision's concurrency slots (its lease)
``POST /v1/report``         the upstream's status for a decision: feeds its lockouts
``GET /v1/authorize``       forward-auth (``ratekeeper.server.authorize``, when present)
``/admin/...``              the admin API (``ratekeeper.server.admin``), only with a token
``/dashboard``              the dashboard (``ratekeeper.server.dashboard``), only with a token
``GET /healthz``            pings the store: 200 or 503
``GET /metrics``            Prometheus text format
``GET /openapi.json``       what is served here, described
==========================  ======================================================

Every handler is thin: read the call (``decisions``), ask the service's
current limiter, write the answer. Every error is JSON,
``{"error": {"code", "message"}}``. ``/v1/*`` may require a token
(``check_token``): ``Authorization: Bearer`` on the JSON endpoints, or
``X-Ratekeeper-Token`` on any of them (forward-auth passes the client's own
``Authorization`` on), compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..engine import Prepared
from ..stores import StoreUnavailableError
from ._asgi import JSON_TYPE, BodyTooLargeError, ClientGoneError, read_body, send_answer
from .admin import admin_routes, openapi_paths
from .authorize import authorize_route
from .dashboard import dashboard_route
from .decisions import (
    MOST_BODY,
    InvalidRequestError,
    check_call,
    check_calls,
    decision_json,
    encode_json,
    error_json,
    lease_token,
    parse_body,
    report_call,
)
from .openapi import openapi_document
from .service import Service

__all__ = ["CheckEndpoint", "CheckTokenGuard", "DecisionApi", "build_app", "served_routes"]

_log = logging.getLogger("ratekeeper.server")
#: the header that carries the check token where ``Authorization`` is the client's
TOKEN_HEADER = b"x-ratekeeper-token"


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(error_json(code, message), status_code=status, headers=headers or None)


def _invalid(error: InvalidRequestError) -> JSONResponse:
    return _error(error.status, error.code, error.message)


async def call_body(scope: Scope, receive: Receive) -> bytes:
    """The body of a call, refused past :data:`MOST_BODY` bytes without reading the rest."""
    try:
        return await read_body(scope, receive, MOST_BODY)
    except BodyTooLargeError:
        raise InvalidRequestError(f"the body is over {MOST_BODY:,} bytes") from None


class CheckEndpoint:
    """``POST /v1/check`` as a plain ASGI app: the hot path, no ``Request``/``Response`` objects.

    Reads the call, decides it with the service's current limiter (taking a
    cap's lease), answers the decision's status and JSON; a malformed call
    gets its 422 (or 400) and nothing is charged.
    """

    __slots__ = ("service",)

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            call = check_call(parse_body(await call_body(scope, receive)))
        except InvalidRequestError as error:
            await _answer(scope, send, error.status, error_json(error.code, error.message))
            return
        except ClientGoneError:
            return
        service = self.service
        try:
            decision = await call.decide(service.limiter)
        except ValueError as error:  # the engine refused the call before charging anything
            await _answer(scope, send, 422, error_json("invalid_request", str(error)))
            return
        await _answer(scope, send, decision.status_code, decision_json(decision, service.seal))


async def _answer(scope: Scope, send: Send, status: int, content: Any) -> None:
    await send_answer(scope, send, status, [JSON_TYPE], encode_json(content))


class DecisionApi:
    """The handlers of ``/v1/check:batch``, ``/v1/release``, ``/v1/report``, ``/healthz``
    and ``/metrics`` on one service (``/v1/check`` is :class:`CheckEndpoint`)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def check_batch(self, request: Request) -> Response:
        try:
            calls = check_calls(parse_body(await call_body(request.scope, request.receive)))
        except InvalidRequestError as error:
            return _invalid(error)
        limiter, seal = self.service.limiter, self.service.seal  # one policy for the batch
        # every call planned before any is charged: a cost the engine refuses (the policy
        # multiplies it past an algorithm's bound) refuses the whole batch, nothing taken
        for index, call in enumerate(calls):
            try:
                call.plan(limiter)
            except ValueError as error:
                return _error(422, "invalid_request", f"[{index}]: {error}")
        answers = []
        for call in calls:
            decision = await call.decide(limiter)
            answers.append(decision_json(decision, seal))
        return JSONResponse(answers)

    async def release(self, request: Request) -> Response:
        try:
            token = lease_token(parse_body(await call_body(request.scope, request.receive)))
        except InvalidRequestError as error:
            return _invalid(error)
        lease = self.service.seal.open(token)
        if lease is None:
            return _error(404, "unknown_lease", "no lease of this service has that handle")
        released = await self.service.limiter.release_lease(lease)
        return JSONResponse({"released": released})

    async def report(self, request: Request) -> Response:
        """Feed the upstream's status to the lockouts of the request it answered.

        The request is planned again from the same fields (route, identity,
        lockout counters: no store call, nothing charged), and each of its
        lockouts that counts ``status`` as a failure is fed, as the middleware
        does with ``record_response`` once the app has answered.
        """
        try:
            report = report_call(parse_body(await call_body(request.scope, request.receive)))
        except InvalidRequestError as error:
            return _invalid(error)
        limiter, call = self.service.limiter, report.call
        try:
            prepared = call.plan(limiter)
        except ValueError as error:  # the engine refused the call, as /v1/check would
            return _error(422, "invalid_request", str(error))
        answered: list[dict[str, Any]] = []
        if isinstance(prepared, Prepared):
            record = limiter.store.lockouts.record_failure_async
            for lockout, key in prepared.lockouts:
                failure = report.status in lockout.failure_status
                entry: dict[str, Any] = {"name": lockout.name, "failure": failure}
                entry.update(blocked=False, until=None)
                if failure:
                    try:
                        block = await record(key, lockout.rule)
                    except StoreUnavailableError:
                        return _error(503, "store_unavailable", "the store cannot be reached")
                    if block.blocked:
                        entry.update(blocked=True, until=-(-block.until_ns // 1_000_000_000))
                        limiter.tell_block(
                            block,
                            lockout=lockout.name,
                            category=prepared.category.name,
                            key_id=prepared.key_id,
                        )
                answered.append(entry)
        return JSONResponse({"lockouts": answered})

    async def healthz(self, request: Request) -> Response:
        service = self.service
        try:
            there = await service.ping()
        except Exception:  # a health check answers, whatever went wrong
            _log.exception("store ping failed")
            there = False
        body = {
            "status": "ok" if there else "unavailable",
            "store": "ok" if there else "unreachable",
            "degraded": bool(service.store.degraded),
            "policy": service.policy.name,
        }
        return JSONResponse(body, status_code=200 if there else 503)

    async def metrics(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        # read in a thread: counting a Redis store's blocks scans its keys
        body = await run_in_threadpool(self.service.metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _envoy_json_route(service: Service) -> BaseRoute | None:
    """``POST /json`` (Envoy's call over HTTP, as the reference serves it) when the policy
    the service starts with reads Envoy's descriptors and the envoy extra is installed."""
    if service.policy.envoy is None:
        return None
    try:
        from .envoy import json_route
    except ModuleNotFoundError:
        return None
    return json_route(service)


class CheckTokenGuard:
    """Refuses ``/v1/*`` without the check token (401, JSON); everything else passes.

    ``path``/``what``: the same for another path and token (``/metrics`` and the
    metrics token: a path ending in ``/`` guards what is under it, else that path).
    """

    def __init__(
        self, app: ASGIApp, token: str, path: str = "/v1/", what: str = "check token"
    ) -> None:
        self.app = app
        self._token = token.encode("utf-8")
        self._path, self._under = path, path.endswith("/")
        self._what = what

    def _guards(self, path: str) -> bool:
        return path.startswith(self._path) if self._under else path == self._path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self._presented(scope):
            await self.app(scope, receive, send)
            return
        response = _error(
            401,
            "unauthorized",
            f"this service needs its {self._what}",
            **{"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _presented(self, scope: Scope) -> bool:
        bearer_allowed = scope["path"] != "/v1/authorize"
        found = False
        for name, value in scope["headers"]:
            if name == TOKEN_HEADER:
                found |= hmac.compare_digest(value.strip(), self._token)
            elif name == b"authorization" and bearer_allowed:
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    found |= hmac.compare_digest(token.strip(), self._token)
        return found


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return _error(
        error.status_code,
        codes.get(error.status_code, "http_error"),
        str(error.detail),
        **(error.headers or {}),
    )


async def _server_error(request: Request, error: Exception) -> Response:
    return _error(500, "internal_error", "the service failed to answer; see its log")


def served_routes(app: Starlette) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every route the app serves, mounts walked (for the OpenAPI test)."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Route):
                for method in route.methods or ():
                    if method != "HEAD":
                        found.add((method, prefix + route.path))

    walk(list(app.routes), "")
    return found


def build_app(
    service: Service,
    *,
    admin_token: str | None = None,
    check_token: str | None = None,
    metrics_token: str | None = None,
) -> Starlette:
    """The service's app. No ``admin_token``: no admin API nor dashboard (both 404).
    ``check_token``: ``/v1/*`` needs it; ``metrics_token``: ``/metrics`` needs it.

    The admin routes (``ratekeeper.server.admin``) read the token from
    ``service.admin_token``, set here.
    """
    api = DecisionApi(service)
    routes: list[BaseRoute] = [
        Route("/v1/check", CheckEndpoint(service), methods=["POST"]),
        Route("/v1/check:batch", api.check_batch, methods=["POST"]),
        Route("/v1/release", api.release, methods=["POST"]),
        Route("/v1/report", api.report, methods=["POST"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
    routes.append(authorize_route(service))
    envoy_json = _envoy_json_route(service)
    if envoy_json is not None:
        routes.append(envoy_json)
    service.admin_token = admin_token
    if admin_token:
        routes.append(Mount("/admin", routes=admin_routes(service)))
        routes.append(dashboard_route(service))
    document = openapi_document(
        admin_paths=openapi_paths() if admin_token else None, envoy_json=envoy_json is not None
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.service = service
    if check_token:
        app.add_middleware(CheckTokenGuard, token=check_token)
        if envoy_json is not None:  # a decision endpoint too: the same token
            app.add_middleware(CheckTokenGuard, token=check_token, path="/json")
    if metrics_token:  # Prometheus: authorization: {credentials_file: ...} in the scrape job
        app.add_middleware(
            CheckTokenGuard, token=metrics_token, path="/metrics", what="metrics token"
        )
    return app

"""Per-route limits: ``ratekeeper.limit("10/minute", key="ip")``.

One object, two uses::

    @app.get("/search", dependencies=[Depends(ratekeeper.limit("10/minute"))])  # FastAPI

    @ratekeeper.limit("5/minute", key="api_key")        # Starlette, FastAPI, Flask, Django views
    async def search(request): ...

The limit is charged through :class:`RateLimiter`/:class:`AsyncRateLimiter`
on its own store (a new :class:`MemoryStore` unless one is given). Its counter
is per endpoint (module and name of the view function) and per caller. Admitted
responses get the ``X-RateLimit-*`` trio; over the limit the answer is 429 with
``Retry-After``, the trio and ``{"detail": "..."}``, FastAPI's error shape.

No framework is imported here until a request shows which one it is; the
FastAPI dependency lives in :mod:`ratekeeper.integrations.fastapi`.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

from ..algorithms import DEFAULT_ALGORITHM, get_algorithm
from ..engine import AsyncRateLimiter, Decision, RateLimiter, RatesLike
from ..http.answers import decision_headers, retry_after_seconds
from ..identity import ClientAddresses, HeaderReader, api_key_from, key_digest
from ..rates import parse_rates
from ..stores.base import LimitSpec, Store
from ..stores.memory import MemoryStore

__all__ = ["RouteLimit", "limit"]

KeyFunc = Callable[[Any], str]
#: injected into FastAPI endpoints' signatures so FastAPI hands us the request
_REQUEST_PARAM = "ratekeeper_request"
_RESPONSE_PARAM = "ratekeeper_response"
#: the headers a route limit keyed by API key reads: the key, or a bearer token
_KEY_HEADERS = ("x-api-key",)
_KEY_READER = HeaderReader((*_KEY_HEADERS, "authorization"))


def limit(
    rates: RatesLike,
    key: str | KeyFunc = "ip",
    store: Store | None = None,
    algorithm: str | None = None,
    *,
    ipv4_prefix: int = 32,
    ipv6_prefix: int = 64,
) -> RouteLimit:
    """A rate limit for one route: a FastAPI dependency and a view decorator.

    ``key`` says whose requests count together: ``"ip"`` (the connection's
    address), ``"api_key"`` (``X-API-Key`` or ``Authorization: Bearer``; callers
    without one by IP) or a function of the framework's request returning a
    string. Clients are counted by IP network, as a policy's are: an IPv6
    client by its ``ipv6_prefix`` (a /64: one host can use any address of
    it), an IPv4 client by its ``ipv4_prefix`` (the whole address).
    """
    return RouteLimit(
        rates, key=key, store=store, algorithm=algorithm, ipv4_prefix=ipv4_prefix,
        ipv6_prefix=ipv6_prefix,
    )  # fmt: skip


class RouteLimit:
    """What :func:`limit` returns; see the module docstring."""

    def __init__(
        self,
        rates: RatesLike,
        key: str | KeyFunc = "ip",
        store: Store | None = None,
        algorithm: str | None = None,
        *,
        ipv4_prefix: int = 32,
        ipv6_prefix: int = 64,
    ) -> None:
        if isinstance(rates, str):
            # a typo, or a rate past its algorithm's bounds, fails at import time,
            # not on the first request
            chosen = get_algorithm(algorithm or DEFAULT_ALGORITHM)
            for rate in parse_rates(rates):
                LimitSpec.of(chosen, rate)
        if not callable(key) and key not in ("ip", "api_key"):
            raise ValueError(f'key must be "ip", "api_key" or a function, got {key!r}')
        self.rates = rates
        self.key = key
        self.store: Store = store if store is not None else MemoryStore()
        name = algorithm or DEFAULT_ALGORITHM
        self._limiter = RateLimiter(self.store, algorithm=name)
        self._async_limiter = AsyncRateLimiter(self.store, algorithm=name)
        self._dependency: Callable[..., Any] | None = None
        self._addresses: ClientAddresses[None] = ClientAddresses(ipv4_prefix, ipv6_prefix)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``@limit(...)`` on a view, or FastAPI calling the dependency with keywords."""
        if len(args) == 1 and not kwargs and inspect.isroutine(args[0]):
            return self._decorate(args[0])
        return self.__wrapped__(*args, **kwargs)

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        """The FastAPI dependency this object stands for.

        FastAPI, like ``inspect.signature``, follows ``__wrapped__``: so
        ``Depends(limit(...))`` sees an async function taking the request and
        the response. Built on first use, so that FastAPI is imported only by
        those who use it.
        """
        if self._dependency is None:
            try:
                from .fastapi import dependency
            except ImportError as error:  # no starlette: not a dependency of anything
                raise AttributeError("__wrapped__") from error
            self._dependency = dependency(self)
        return self._dependency

    # deciding

    def counter_key(self, scope: str, request: Any) -> str:
        """The counter of ``request`` at endpoint ``scope``: endpoint and caller."""
        key = self.key
        if callable(key):
            return f"route:{scope}:{key(request)}"
        ip, header = _client(request)
        if key == "api_key":  # the policy's parser of presented keys (ratekeeper.identity)
            presented = api_key_from(_KEY_READER.from_getter(header), _KEY_HEADERS, True)
            if presented:  # never the key itself in the store
                return f"route:{scope}:key:{key_digest(presented)[:32]}"
        return f"route:{scope}:ip:{self._addresses.counted(ip)}"

    def hit(self, scope: str, request: Any) -> Decision:
        """Charge one request (sync frameworks)."""
        return self._limiter.hit(self.counter_key(scope, request), self.rates)

    async def hit_async(self, scope: str, request: Any) -> Decision:
        """Charge one request (async frameworks)."""
        return await self._async_limiter.hit(self.counter_key(scope, request), self.rates)

    def headers(self, decision: Decision) -> dict[str, str]:
        """The trio, and ``Retry-After`` when refused (:mod:`ratekeeper.http.answers`)."""
        return decision_headers(decision)

    # decorating

    def _decorate(self, view: Callable[..., Any]) -> Callable[..., Any]:
        scope = f"{view.__module__}.{view.__qualname__}"
        signature = None
        request_name, response_name = _REQUEST_PARAM, _RESPONSE_PARAM
        if "fastapi" in sys.modules:  # FastAPI passes only what the signature asks for
            from .fastapi import signature_with_request

            signature, request_name, response_name = signature_with_request(
                view, _REQUEST_PARAM, _RESPONSE_PARAM
            )

        def injected(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
            """The request and FastAPI's response; what only we asked for is taken away."""
            request = kwargs.get(request_name)
            response = kwargs.get(response_name)
            kwargs.pop(_REQUEST_PARAM, None)
            kwargs.pop(_RESPONSE_PARAM, None)
            return (request if request is not None else _request_in(args)), response

        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                request, response = injected(args, kwargs)
                decision = await self.hit_async(scope, request)
                if not decision.allowed:
                    return _refusal(request, decision, self.headers(decision))
                result = await view(*args, **kwargs)
                return _with_headers(request, result, response, self.headers(decision))

            wrapper = async_wrapper
        else:

            @functools.wraps(view)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                request, response = injected(args, kwargs)
                decision = self.hit(scope, request)
                if not decision.allowed:
                    return _refusal(request, decision, self.headers(decision))
                result = view(*args, **kwargs)
                return _with_headers(request, result, response, self.headers(decision))

            wrapper = sync_wrapper
        if signature is not None:
            wrapper.__signature__ = signature  # type: ignore[union-attr]
        return wrapper


def _request_in(args: tuple[Any, ...]) -> Any:
    """The framework's request among a view's arguments (Starlette, Django), else Flask's."""
    for arg in args[:2]:  # (request) or (self, request)
        if (hasattr(arg, "scope") and hasattr(arg, "headers")) or hasattr(arg, "META"):
            return arg
    import flask  # the one framework whose views get no request argument

    return flask.request


def _client(request: Any) -> tuple[str, Callable[[str], str | None]]:
    """``(client IP, header getter)`` of a Starlette, Django or Flask request."""
    meta = getattr(request, "META", None)
    if meta is not None:  # Django
        return meta.get("REMOTE_ADDR") or "", lambda name: meta.get(
            "HTTP_" + name.upper().replace("-", "_")
        )
    client = getattr(request, "client", None)
    if client is not None or hasattr(request, "scope"):  # Starlette
        return (client.host if client else ""), request.headers.get
    return request.remote_addr or "", request.headers.get  # Flask


def _detail(decision: Decision) -> dict[str, str]:
    seconds = retry_after_seconds(decision.retry_after)
    return {"detail": f"Rate limit exceeded. Retry after {seconds} seconds."}


def _refusal(request: Any, decision: Decision, headers: dict[str, str]) -> Any:
    """A 429 in the request's framework."""
    body = _detail(decision)
    if hasattr(request, "META"):
        from django.http import JsonResponse  # type: ignore[import-untyped]

        return JsonResponse(body, status=429, headers=headers)
    if hasattr(request, "scope"):
        from starlette.responses import JSONResponse

        return JSONResponse(body, status_code=429, headers=headers)
    import flask

    response = flask.jsonify(body)
    response.status_code = 429
    response.headers.update(headers)
    return response


def _with_headers(request: Any, result: Any, response: Any, headers: dict[str, str]) -> Any:
    """``result`` of the view with the rate limit fields added."""
    if hasattr(request, "META"):  # Django: an HttpResponse
        for name, value in headers.items():
            result[name] = value
        return result
    if hasattr(request, "scope"):  # Starlette/FastAPI: a Response, or FastAPI content
        target = result if hasattr(result, "raw_headers") else response
        if target is not None:
            target.headers.update(headers)
        return result
    import flask

    made = flask.make_response(result)
    made.headers.update(headers)
    return made

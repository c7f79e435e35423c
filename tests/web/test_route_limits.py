"""``ratekeeper.limit``: a FastAPI dependency and a view decorator on four frameworks."""

from __future__ import annotations

from typing import Any

import fastapi
import flask
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from webtools import T0, asgi_client, use_django_urls, wsgi_client

import ratekeeper
from ratekeeper import MemoryStore
from support.clock import Clock

RESET = str(int(T0) + 60)
REFUSED = {"detail": "Rate limit exceeded. Retry after 60 seconds."}


def trio(response: Any) -> tuple[str, str, str]:
    headers = response.headers
    return (
        headers["x-ratelimit-limit"],
        headers["x-ratelimit-remaining"],
        headers["x-ratelimit-reset"],
    )


def assert_refused(response: Any) -> None:
    assert response.status_code == 429
    assert response.json() == REFUSED
    assert response.headers["retry-after"] == "60"
    assert trio(response) == ("2", "0", RESET)


# FastAPI


@pytest.fixture
def fastapi_app(store: MemoryStore) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    per_ip = ratekeeper.limit("2/minute", key="ip", store=store, algorithm="fixed_window")
    per_key = ratekeeper.limit("2/minute", key="api_key", store=store, algorithm="fixed_window")

    @app.get("/dep", dependencies=[fastapi.Depends(per_ip)])
    async def with_dependency() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/keyed")
    async def keyed(_: None = fastapi.Depends(per_key)) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/decorated/{item}")
    @ratekeeper.limit("2/minute", store=store, algorithm="fixed_window")
    async def decorated(item: int, q: str = "") -> dict[str, Any]:
        return {"item": item, "q": q}

    @app.get("/sync")
    @ratekeeper.limit("2/minute", store=store, algorithm="fixed_window")
    def sync_endpoint(request: Request) -> Response:
        return PlainTextResponse(f"sync from {request.client.host if request.client else ''}")

    return app


async def test_fastapi_dependency_adds_the_trio_and_raises_429_when_over(
    fastapi_app: fastapi.FastAPI,
) -> None:
    async with asgi_client(fastapi_app) as client:
        admitted = [await client.get("/dep") for _ in range(2)]
        refused = await client.get("/dep")

    assert [(r.status_code, r.json()) for r in admitted] == [(200, {"ok": True})] * 2
    assert [trio(r) for r in admitted] == [("2", "1", RESET), ("2", "0", RESET)]
    assert_refused(refused)


async def test_fastapi_dependency_keyed_by_api_key_counts_each_key_alone(
    fastapi_app: fastapi.FastAPI,
) -> None:
    async with asgi_client(fastapi_app) as client:
        first = [await client.get("/keyed", headers={"X-API-Key": "a"}) for _ in range(3)]
        bearer = await client.get("/keyed", headers={"Authorization": "Bearer b"})
        anonymous = await client.get("/keyed")

    assert [r.status_code for r in first] == [200, 200, 429]
    assert (bearer.status_code, trio(bearer)[1]) == (200, "1")
    assert (anonymous.status_code, trio(anonymous)[1]) == (200, "1")


async def test_fastapi_decorated_endpoints_keep_their_parameters(
    fastapi_app: fastapi.FastAPI, clock: Clock
) -> None:
    async with asgi_client(fastapi_app) as client:
        admitted = [await client.get("/decorated/7", params={"q": "x"}) for _ in range(2)]
        refused = await client.get("/decorated/8")
        clock.t += 60
        later = await client.get("/decorated/9")
        sync = [await client.get("/sync") for _ in range(3)]

    assert [r.json() for r in admitted] == [{"item": 7, "q": "x"}] * 2
    assert [trio(r) for r in admitted] == [("2", "1", RESET), ("2", "0", RESET)]
    assert_refused(refused)
    assert (later.status_code, later.json()) == (200, {"item": 9, "q": ""})
    assert [r.status_code for r in sync] == [200, 200, 429]
    assert sync[0].text == "sync from 203.0.113.7"


def test_fastapi_sees_the_dependency_as_an_async_function_of_request_and_response() -> None:
    import inspect

    route_limit = ratekeeper.limit("1/second")
    assert inspect.iscoroutinefunction(inspect.unwrap(route_limit))
    assert list(inspect.signature(route_limit).parameters) == ["request", "response"]


# Starlette


async def test_starlette_endpoints_are_decorated_with_the_request_they_receive(
    store: MemoryStore,
) -> None:
    @ratekeeper.limit(
        "2/minute",
        key=lambda request: request.headers["x-user"],
        store=store,
        algorithm="fixed_window",
    )
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/hello", hello)])
    async with asgi_client(app) as client:
        alice = [await client.get("/hello", headers={"X-User": "alice"}) for _ in range(3)]
        bob = await client.get("/hello", headers={"X-User": "bob"})

    assert [r.status_code for r in alice] == [200, 200, 429]
    assert alice[0].text == "hello"
    assert trio(alice[0]) == ("2", "1", RESET)
    assert_refused(alice[2])
    assert trio(bob) == ("2", "1", RESET)


# Flask


def test_flask_views_are_decorated_with_the_global_request(store: MemoryStore) -> None:
    app = flask.Flask(__name__)

    @app.get("/items/<int:item>")
    @ratekeeper.limit("2/minute", store=store, algorithm="fixed_window")
    def item(item: int) -> dict[str, int]:
        return {"item": item}

    with wsgi_client(app) as client:
        responses = [client.get(f"/items/{n}") for n in range(3)]
        other = wsgi_client(app, ip="198.51.100.3").get("/items/1")

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [r.json() for r in responses[:2]] == [{"item": 0}, {"item": 1}]
    assert trio(responses[0]) == ("2", "1", RESET)
    assert_refused(responses[2])
    assert other.status_code == 200


# Django


def test_django_views_are_decorated_with_their_request(
    django_settings: None, store: MemoryStore
) -> None:
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    @ratekeeper.limit("2/minute", key="api_key", store=store, algorithm="fixed_window")
    def view(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"ok": True})

    use_django_urls([path("view", view)])
    with wsgi_client(get_wsgi_application()) as client:
        responses = [client.get("/view", headers={"X-API-Key": "k"}) for _ in range(3)]
        other = client.get("/view", headers={"X-API-Key": "other"})

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert trio(responses[1]) == ("2", "0", RESET)
    assert_refused(responses[2])
    assert other.status_code == 200


# arguments


def test_bad_rates_and_keys_fail_when_the_limit_is_written() -> None:
    with pytest.raises(ValueError, match="key must be"):
        ratekeeper.limit("2/minute", key="cookie")
    with pytest.raises(ValueError):  # noqa: PT011 -- the rate parser's own message
        ratekeeper.limit("2 per fortnight")

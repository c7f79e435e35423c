"""Django behind the WSGI middleware: limits, refusals and exemptions on a real Django stack."""

from __future__ import annotations

from typing import Any

import pytest
from webtools import IP_POLICY, make_policy, use_django_urls, wsgi_client

from ratekeeper import MemoryStore
from ratekeeper.integrations.wsgi import RateLimitMiddleware
from support.clock import Clock


@pytest.fixture
def application(django_settings: None, store: MemoryStore) -> RateLimitMiddleware:
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import path

    def hello(request: HttpRequest) -> HttpResponse:
        return HttpResponse("hello", content_type="text/plain")

    def items(request: HttpRequest, item: int) -> JsonResponse:
        return JsonResponse({"item": item})

    use_django_urls(
        [
            path("health", hello),
            path("api/hello", hello),
            path("api/items/<int:item>", items),
        ]
    )
    return RateLimitMiddleware(get_wsgi_application(), policy=make_policy(IP_POLICY), store=store)


def test_django_views_answer_with_the_trio_until_the_policy_refuses(
    application: Any, clock: Clock
) -> None:
    with wsgi_client(application) as client:
        admitted = [client.get("/api/hello"), client.get("/api/items/7"), client.get("/api/hello")]
        clock.t += 30
        refused = client.get("/api/items/8")
        health = client.get("/health")

    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert admitted[1].json() == {"item": 7}
    assert [r.headers["x-ratelimit-remaining"] for r in admitted] == ["2", "1", "0"]
    assert refused.status_code == 429
    assert refused.json() == {"error": "too_many", "ip": "203.0.113.7", "retry_after": 30}
    assert refused.headers["retry-after"] == "30"
    assert (health.status_code, "x-ratelimit-limit" in health.headers) == (200, False)


def test_django_clients_behind_a_trusted_proxy_are_told_apart(application: Any) -> None:
    with wsgi_client(application, ip="127.0.0.1") as proxy:
        first = [
            proxy.get("/api/hello", headers={"X-Forwarded-For": "198.51.100.1"}) for _ in range(4)
        ]
        second = proxy.get("/api/hello", headers={"X-Forwarded-For": "198.51.100.2"})

    assert [r.status_code for r in first] == [200, 200, 200, 429]
    assert first[-1].json()["ip"] == "198.51.100.1"
    assert (second.status_code, second.headers["x-ratelimit-remaining"]) == (200, "2")

"""nginx and Caddy in front of an API, asking ratekeeper with the configs in deploy/: flowcms.

The decision service runs on the real clock, so the test that counts a
minute's requests first makes sure they all fall in one clock minute
(:func:`one_clock_minute`): flowcms counts in sliding windows, where the
requests of one minute weigh on the next, so 60 would not be exactly what
passes if they straddled a minute's start.

The tests of this module share one decision service per proxy: each counts
on the counters of its own API key (``demo-starter``, ``demo-professional``)
or of none.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING

import httpx
from proxy_apps import UPSTREAM_HEADER

if TYPE_CHECKING:  # pytest loads conftest; importing it at run time is unreliable
    from conftest import Proxied

STARTER = {"X-API-Key": "demo-starter"}
PROFESSIONAL = {"X-API-Key": "demo-professional"}
#: seconds the requests of one test may take; one starting later in a minute waits for the next
NEEDED = 10.0
DOCS_URL = "https://docs.flowcms.io/rate-limits"
#: the fields a proxy copies from the decision (lower-case)
RATE_FIELDS = frozenset(
    {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after",
     "ratelimit", "ratelimit-policy", "x-ratekeeper-status"}
)  # fmt: skip
#: what the shipped nginx config answers in place of the policy's bodies (nginx drops them)
NGINX_BODIES = {
    429: {"error": {"code": "rate_limited", "message": "Too many requests."}},
    401: {"error": {"code": "unauthorized", "message": "A valid API key is required."}},
    400: {"error": {"code": "bad_request", "message": "The request cannot be rate limited."}},
}


def one_clock_minute() -> float:
    """The start of the clock minute that has :data:`NEEDED` seconds left, waiting if need be."""
    now = time.time()
    start = now - now % 60
    if start + 60 - now < NEEDED:
        time.sleep(start + 60 - now)
        start += 60
    return start


def rate_fields(response: httpx.Response) -> dict[str, str]:
    """The rate limit fields of ``response``, each sent once."""
    found: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        if name in RATE_FIELDS:
            assert name not in found, f"{name} sent twice: {found[name]!r}, {value!r}"
            found[name] = value
    return found


def trio(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int(reset)),
    }


def flowcms_429(retry_after: int) -> bytes:
    message = f"You have exceeded your API rate limit. Please retry after {retry_after} seconds."
    return json.dumps(
        {"error": {"code": "RATE_LIMIT_EXCEEDED", "message": message,
                   "retry_after": retry_after, "docs_url": DOCS_URL}}
    ).encode()  # fmt: skip


def test_the_61st_request_of_demo_starter_in_a_minute_gets_429_from_the_proxy(
    proxied: Proxied,
) -> None:
    with httpx.Client(base_url=proxied.url) as client:
        minute = one_clock_minute()
        passed = [client.get("/api/pages", headers=STARTER) for _ in range(60)]
        before = time.time()
        refused = client.get("/api/pages", headers=STARTER)
        after = time.time()

    assert after < minute + 60, "the requests took so long that they crossed a minute"
    for sent, response in enumerate(passed, start=1):
        assert response.status_code == 200
        assert response.headers[UPSTREAM_HEADER] == "yes"
        assert response.json() == {"upstream": True, "method": "GET", "path": "/api/pages"}
        # the minute's 60 stop weighing when the next minute ends
        assert rate_fields(response) == trio(60, 60 - sent, minute + 120)
    assert len(proxied.upstream.received) == 60

    # the refused request could pass 1 s into the next minute: 60 * (59/60) < 60
    assert refused.status_code == 429
    assert UPSTREAM_HEADER not in refused.headers
    retry_after = int(refused.headers["retry-after"])
    assert math.ceil(minute + 61 - after) <= retry_after <= math.ceil(minute + 61 - before)
    assert rate_fields(refused) == {**trio(60, 0, minute + 61), "retry-after": str(retry_after)}
    assert refused.headers["content-type"] == "application/json"
    if proxied.name == "caddy":  # the policy's body, as the service wrote it
        assert refused.content == flowcms_429(retry_after)
    else:
        assert refused.json() == NGINX_BODIES[429]
    assert len(proxied.upstream.received) == 60


def test_an_exempt_path_reaches_the_upstream_without_rate_limit_fields(proxied: Proxied) -> None:
    with httpx.Client(base_url=proxied.url) as client:
        # a client's own rate limit fields are not echoed back as the decision's
        response = client.post(
            "/webhooks/deploy", content=b"{}", headers={"X-RateLimit-Limit": "7"}
        )

    assert response.status_code == 200
    assert response.headers[UPSTREAM_HEADER] == "yes"
    assert rate_fields(response) == {}


def test_the_request_body_reaches_the_upstream(proxied: Proxied) -> None:
    query = b'{"query": "{ pages { id } }"}'
    with httpx.Client(base_url=proxied.url) as client:
        response = client.post("/graphql", content=query, headers=PROFESSIONAL)

    assert response.status_code == 200
    assert rate_fields(response) == trio(1000, 999, int(response.headers["x-ratelimit-reset"]))
    [received] = proxied.upstream.received
    assert (received.method, received.raw_path, received.body) == ("POST", "/graphql", query)


def test_an_unknown_key_gets_401_from_the_proxy(proxied: Proxied) -> None:
    with httpx.Client(base_url=proxied.url) as client:
        response = client.get("/api/pages", headers={"X-API-Key": "not-a-key"})

    assert response.status_code == 401
    assert rate_fields(response) == {}
    assert response.headers["content-type"] == "application/json"
    if proxied.name == "caddy":
        assert response.json() == {
            "error": {
                "code": "UNAUTHORIZED",
                "message": "A valid API key is required.",
                "docs_url": DOCS_URL,
            }
        }
    else:
        assert response.json() == NGINX_BODIES[401]
    assert proxied.upstream.received == []


def test_a_client_cannot_name_another_request_to_the_decision_service(proxied: Proxied) -> None:
    # /webhooks/** is exempt: a client naming it in the headers of either proxy would pass
    named = {
        "X-Original-Method": "POST", "X-Original-URI": "/webhooks/x",
        "X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/webhooks/x",
    }  # fmt: skip
    with httpx.Client(base_url=proxied.url) as client:
        response = client.get("/api/pages", headers={"X-API-Key": "not-a-key", **named})

    assert response.status_code == 401
    assert proxied.upstream.received == []


def test_a_path_that_is_not_utf_8_gets_400_from_the_proxy(proxied: Proxied) -> None:
    with httpx.Client(base_url=proxied.url) as client:
        response = client.get("/api/pages/%FF", headers=STARTER)

    assert response.status_code == 400
    if proxied.name == "caddy":
        assert response.json() == {
            "error": {
                "code": "invalid_request",
                "message": "X-Forwarded-Uri is not UTF-8 once percent-decoded: '/api/pages/%FF'",
            }
        }
    else:
        assert response.json() == NGINX_BODIES[400]
    assert proxied.upstream.received == []


def test_the_proxy_refuses_every_request_when_the_service_does_not_answer(
    proxied_without_service: Proxied,
) -> None:
    expected = {"nginx": 500, "caddy": 502}[proxied_without_service.name]
    with httpx.Client(base_url=proxied_without_service.url) as client:
        answers = [client.get(path, headers=STARTER) for path in ("/api/pages", "/webhooks/x")]

    assert [response.status_code for response in answers] == [expected, expected]
    assert proxied_without_service.upstream.received == []

"""``POST /v1/check`` and ``/v1/check:batch``: the decision's status, JSON and headers, exact.

The scanner example (SEEDS.md, provider 2) on a fake clock at a minute
boundary: a free key has 60 requests a minute and 20 scans an hour.
"""

from __future__ import annotations

import pytest
from service_client import IP, T0, MakeService, example, scan

from ratekeeper.stores import RedisStore

SCANNER_429_BODY = {
    "success": False,
    "error": {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "Too many requests. Please try again later.",
        "retryAfter": 3600,
    },
}
# a sliding window has its whole quota back when the previous window no longer weighs
MINUTE, HOUR = int(T0) + 120, int(T0) + 3600


async def test_an_admitted_call_answers_200_with_every_limit_and_the_headers(
    make_service: MakeService,
) -> None:
    client = make_service(example("scanner"))
    response = await client.check(scan())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "allowed": True,
        "status": 200,
        "plan": "free",
        "category": "scans",
        "key_id": "demo-free",
        "retry_after": 0,
        "reset": HOUR,
        "limits": [
            {"name": "api", "limit": 60, "remaining": 59, "reset": MINUTE, "window": 60},
            {"name": "scans", "limit": 20, "remaining": 19, "reset": HOUR, "window": 3600},
        ],
        "headers": {
            "X-RateLimit-Limit": "20",
            "X-RateLimit-Remaining": "19",
            "X-RateLimit-Reset": str(HOUR),
        },
        "body": None,
        "lease": None,
    }


async def test_the_21st_scan_of_the_hour_answers_429_with_the_policy_body(
    make_service: MakeService,
) -> None:
    client = make_service(example("scanner"))
    for _ in range(20):
        assert (await client.check(scan())).status_code == 200
    client.clock.t = T0 + 30
    response = await client.check(scan())
    assert response.status_code == 429
    assert response.json() == {
        "allowed": False,
        "status": 429,
        "plan": "free",
        "category": "scans",
        "key_id": "demo-free",
        "retry_after": 3570,
        "reset": HOUR,
        "limits": [
            {"name": "api", "limit": 60, "remaining": 40, "reset": MINUTE, "window": 60},
            {"name": "scans", "limit": 20, "remaining": 0, "reset": HOUR, "window": 3600},
        ],
        "headers": {
            "X-RateLimit-Limit": "20",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(HOUR),
            "Retry-After": "3570",
        },
        "body": {**SCANNER_429_BODY, "error": {**SCANNER_429_BODY["error"], "retryAfter": 3570}},
        "lease": None,
    }


async def test_an_unknown_key_answers_401_without_limits_and_without_echoing_the_key(
    make_service: MakeService,
) -> None:
    client = make_service(example("scanner"))
    response = await client.check(scan("sk-live-not-a-key"))
    assert response.status_code == 401
    assert response.json() == {
        "allowed": False,
        "status": 401,
        "plan": None,
        "category": "scans",
        "key_id": None,
        "retry_after": 0,
        "reset": None,
        "limits": [],
        "headers": {},
        "body": {
            "success": False,
            "error": {
                "code": "INVALID_API_KEY",
                "message": "The API key is missing or not valid.",
            },
        },
        "lease": None,
    }
    assert "sk-live-not-a-key" not in response.text


async def test_an_exempt_path_answers_200_with_nothing_counted(make_service: MakeService) -> None:
    client = make_service(example("flowcms"))
    call = {"method": "POST", "path": "/webhooks/stripe", "client_ip": IP}
    response = await client.check(call)
    assert response.status_code == 200
    assert response.json() == {
        "allowed": True,
        "status": 200,
        "plan": None,
        "category": "webhooks",
        "key_id": None,
        "retry_after": 0,
        "reset": None,
        "limits": [],
        "headers": {},
        "body": None,
        "lease": None,
    }


SECRET_KEY_POLICY = """
version: 1
name: secretive
limits:
  api: {by: api_key}
plans:
  pro: {limits: {api: 10/minute}}
keys:
  - {key: sk-live-0123456789abcdef, id: acme, plan: pro}
categories:
  - {name: api, match: /**, charge: [api]}
"""


async def test_the_answer_names_the_key_id_never_the_key_nor_a_counter(
    make_service: MakeService,
) -> None:
    client = make_service(SECRET_KEY_POLICY)
    call = {"path": "/v1/x", "headers": {"Authorization": "Bearer sk-live-0123456789abcdef"}}
    response = await client.check({**call, "client_ip": IP})
    assert response.status_code == 200
    answer = response.json()
    assert (answer["plan"], answer["key_id"]) == ("pro", "acme")
    assert "sk-live-0123456789abcdef" not in response.text
    decision = await client.service.limiter.check(path="/v1/x", headers=call["headers"])
    [status] = decision.statuses
    assert status.key not in response.text  # the counter's key: secretive:...{acme}
    assert "{acme}" not in response.text


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    make_service: MakeService,
) -> None:
    """scanner trusts 127.0.0.1: through it the client is the forwarded address."""
    client = make_service(example("scanner"))
    listing = {"method": "GET", "path": "/api/servers"}
    forwarded = {**listing, "headers": {"X-Forwarded-For": "198.51.100.9"}}
    via_proxy = await client.check({**forwarded, "client_ip": "127.0.0.1"})
    direct = await client.check({**listing, "client_ip": "198.51.100.9"})
    spoofed = await client.check({**forwarded, "client_ip": IP})
    remaining = [r.json()["limits"][0]["remaining"] for r in (via_proxy, direct, spoofed)]
    assert remaining == [29, 28, 29]  # anonymous: 30/minute per client IP


async def test_a_closed_store_that_cannot_be_reached_answers_503(
    make_service: MakeService, unused_tcp_port: int
) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{unused_tcp_port}/0", on_error="closed")
    client = make_service(example("scanner"), store=store)
    response = await client.check(scan())
    assert response.status_code == 503
    answer = response.json()
    assert (answer["allowed"], answer["status"], answer["limits"]) == (False, 503, [])
    assert answer["body"] is not None


async def test_a_batch_is_decided_one_by_one_in_order(make_service: MakeService) -> None:
    client = make_service(example("scanner"))
    calls = [scan(), scan("demo-pro"), scan(), scan("nope")]
    response = await client.post("/v1/check:batch", calls)
    assert response.status_code == 200
    answers = response.json()
    assert [a["status"] for a in answers] == [200, 200, 200, 401]
    assert [a["headers"].get("X-RateLimit-Remaining") for a in answers] == ["19", "99", "18", None]
    single = (await client.check(scan())).json()
    assert single["headers"]["X-RateLimit-Remaining"] == "17"


@pytest.mark.parametrize("cost", [1, 5])
async def test_cost_is_charged_against_every_limit(make_service: MakeService, cost: int) -> None:
    client = make_service(example("scanner"))
    answer = (await client.check(scan(cost=cost))).json()
    assert [limit["remaining"] for limit in answer["limits"]] == [60 - cost, 20 - cost]

"""Malformed calls: 422 (400 for a path that is not UTF-8) with a JSON error, and nothing charged.

Each case is sent to a fresh service, then a valid scan: its remaining says
whether the bad call took anything (19 of 20: it did not).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from service_client import IP, MakeService, example, scan

from ratekeeper.server.decisions import MOST_BATCH, MOST_BODY

VALID = scan()


def raw(call: dict[str, Any]) -> bytes:
    return json.dumps(call).encode()


BAD_CHECKS: dict[str, bytes] = {
    "not JSON": b'{"path": "/api/scans", ',
    "not UTF-8 outside a string": b'{"path": "/api/scans"}\xff',
    "a list, not an object": b"[]",
    "a string, not an object": b'"/api/scans"',
    "empty body": b"",
    "NaN cost": raw(VALID)[:-1] + b', "cost": NaN}',
    "path missing": raw({k: v for k, v in VALID.items() if k != "path"}),
    "path not a string": raw({**VALID, "path": 5}),
    "path empty": raw({**VALID, "path": ""}),
    "client_ip missing": raw({k: v for k, v in VALID.items() if k != "client_ip"}),
    "client_ip a number": raw({**VALID, "client_ip": 203}),
    "method a number": raw({**VALID, "method": 1}),
    "method with a space": raw({**VALID, "method": "PO ST"}),
    "headers a list": raw({**VALID, "headers": [["X-API-Key", "demo-free"]]}),
    "header value a number": raw({**VALID, "headers": {"X-API-Key": 5}}),
    "header value null": raw({**VALID, "headers": {"X-API-Key": None}}),
    "header name with a colon": raw({**VALID, "headers": {"X-API-Key:": "demo-free"}}),
    "header value a lone surrogate": raw({**VALID, "headers": {"X-API-Key": "demo-free\udcff"}}),
    "10,000 headers": raw({**VALID, "headers": {f"X-H{n}": "v" for n in range(10_000)}}),
    "1,001 headers": raw({**VALID, "headers": {f"X-H{n}": "v" for n in range(1_001)}}),
    "cost 0": raw({**VALID, "cost": 0}),
    "cost negative": raw({**VALID, "cost": -1}),
    "cost a float": raw({**VALID, "cost": 1.0}),
    "cost a string": raw({**VALID, "cost": "1"}),
    "cost true": raw({**VALID, "cost": True}),
    "cost beyond what is counted exactly": raw({**VALID, "cost": 10**6}),
    "cost huge": raw({**VALID, "cost": 10**40}),
    "an unknown field": raw({**VALID, "client-ip": IP}),
    "nested 100,000 deep": b'{"path": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "over 1 MB": raw({**VALID, "headers": {"X-Pad": "x" * MOST_BODY}}),
}


async def remaining_after(client: Any) -> str:
    response = await client.check(VALID)
    assert response.status_code == 200
    return str(response.json()["headers"]["X-RateLimit-Remaining"])


def assert_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert isinstance(message, str)
    assert message
    return str(message)


@pytest.mark.parametrize("body", BAD_CHECKS.values(), ids=BAD_CHECKS.keys())
async def test_a_malformed_check_is_422_and_charges_nothing(
    make_service: MakeService, body: bytes
) -> None:
    client = make_service(example("scanner"))
    response = await client.post("/v1/check", content=body)
    assert_error(response, 422, "invalid_request")
    assert await remaining_after(client) == "19"


async def test_the_message_names_the_field_at_fault(make_service: MakeService) -> None:
    client = make_service(example("scanner"))
    response = await client.post("/v1/check", content=BAD_CHECKS["cost negative"])
    assert assert_error(response, 422, "invalid_request").startswith("cost: ")
    response = await client.post("/v1/check", content=BAD_CHECKS["header value a number"])
    assert assert_error(response, 422, "invalid_request").startswith("headers.X-API-Key: ")


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 65_536):
        yield body[start : start + 65_536]


async def test_a_body_over_1_mb_without_content_length_is_422_too(
    make_service: MakeService,
) -> None:
    client = make_service(example("scanner"))
    response = await client.post("/v1/check", content=chunks(BAD_CHECKS["over 1 MB"]))
    assert_error(response, 422, "invalid_request")
    assert await remaining_after(client) == "19"


PATHS_NOT_UTF8 = {
    "an invalid byte": raw(VALID).replace(b"/api/scans", b"/api/scans\xff"),
    "a truncated sequence": raw(VALID).replace(b"/api/scans", b"/api/\xe2\x82"),
    "a lone surrogate escape": raw(VALID).replace(b"/api/scans", b"/api/scans\\udcff"),
}


@pytest.mark.parametrize("body", PATHS_NOT_UTF8.values(), ids=PATHS_NOT_UTF8.keys())
async def test_a_path_that_is_not_utf8_is_400_and_charges_nothing(
    make_service: MakeService, body: bytes
) -> None:
    client = make_service(example("scanner"))
    response = await client.post("/v1/check", content=body)
    assert assert_error(response, 400, "invalid_path").startswith("path: ")
    assert await remaining_after(client) == "19"


BAD_BATCHES: dict[str, Any] = {
    "an object, not a list": VALID,
    "empty": [],
    "one bad call among good ones": [VALID, VALID, {**VALID, "cost": 0}],
    f"{MOST_BATCH + 1} calls": [VALID] * (MOST_BATCH + 1),
}


@pytest.mark.parametrize("batch", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
async def test_a_malformed_batch_is_422_and_charges_nothing(
    make_service: MakeService, batch: Any
) -> None:
    client = make_service(example("scanner"))
    response = await client.post("/v1/check:batch", batch)
    assert_error(response, 422, "invalid_request")
    assert await remaining_after(client) == "19"


async def test_a_batch_names_the_call_at_fault(make_service: MakeService) -> None:
    client = make_service(example("scanner"))
    response = await client.post("/v1/check:batch", BAD_BATCHES["one bad call among good ones"])
    assert assert_error(response, 422, "invalid_request").startswith("[2].cost: ")


BAD_RELEASES = {
    "not JSON": b"{",
    "lease missing": b"{}",
    "lease a number": b'{"lease": 5}',
    "lease empty": b'{"lease": ""}',
    "an unknown field": b'{"lease": "x", "slots": 1}',
}


@pytest.mark.parametrize("body", BAD_RELEASES.values(), ids=BAD_RELEASES.keys())
async def test_a_malformed_release_is_422(make_service: MakeService, body: bytes) -> None:
    client = make_service(example("scanner"))
    assert_error(await client.post("/v1/release", content=body), 422, "invalid_request")


BAD_REPORTS = {
    "status missing": VALID,
    "status a string": {**VALID, "status": "401"},
    "status out of range": {**VALID, "status": 99},
    "status true": {**VALID, "status": True},
    "call malformed": {**VALID, "cost": 0, "status": 401},
}


@pytest.mark.parametrize("body", BAD_REPORTS.values(), ids=BAD_REPORTS.keys())
async def test_a_malformed_report_is_422_and_feeds_nothing(
    make_service: MakeService, body: Any
) -> None:
    client = make_service(example("utmstack"))
    login = {"method": "POST", "path": "/api/authenticate", "client_ip": IP}
    for _ in range(5):
        assert_error(await client.post("/v1/report", body | login), 422, "invalid_request")
    assert (await client.check(login)).status_code == 200  # five failures would block


@pytest.mark.parametrize("route", ["/v1/check", "/v1/check:batch", "/v1/release", "/v1/report"])
async def test_the_decision_api_takes_posts_only(make_service: MakeService, route: str) -> None:
    client = make_service(example("scanner"))
    response = await client.http.get(route)
    assert_error(response, 405, "method_not_allowed")


async def test_an_unknown_path_is_a_json_404(make_service: MakeService) -> None:
    client = make_service(example("scanner"))
    assert_error(await client.http.get("/v1/nothing"), 404, "not_found")


#: a category charging 10 units of a sliding log (which counts at most 100,000): a cost the
#: call's validation accepts can pass the algorithm's bound once the policy multiplies it
MULTIPLIED = """
version: 1
name: multiplied
anonymous_plan: anonymous
limits:
  api: {by: ip, algorithm: sliding_log}
plans:
  anonymous: {limits: {api: 100000/minute}}
categories:
  - {name: bulk, match: POST /bulk, charge: {api: 10}}
  - {name: api, match: /**, charge: api}
"""


def call(path: str, cost: int, method: str = "GET") -> dict[str, Any]:
    return {"method": method, "path": path, "client_ip": IP, "cost": cost}


async def api_remaining(client: Any) -> str:
    response = await client.post("/v1/check", call("/x", 1))
    return str(response.json()["headers"]["X-RateLimit-Remaining"])


async def test_a_batch_whose_later_call_the_engine_refuses_charges_none_of_it(
    make_service: MakeService,
) -> None:
    client = make_service(MULTIPLIED)
    batch = [call("/x", 50), call("/bulk", 20_000, "POST")]  # 200,000 units: past the bound
    response = await client.post("/v1/check:batch", batch)
    assert assert_error(response, 422, "invalid_request").startswith("[1]: ")
    assert await api_remaining(client) == "99999"  # the first call took nothing


async def test_a_report_the_engine_refuses_is_422(make_service: MakeService) -> None:
    client = make_service(MULTIPLIED)
    response = await client.post("/v1/report", {**call("/bulk", 20_000, "POST"), "status": 401})
    assert_error(response, 422, "invalid_request")

"""``POST /json``: Envoy's call over plain HTTP, as the reference service serves it.

Through the service's own app (``build_app``) on a memory store at a fixed
clock: the reference README's request and answer shapes (protobuf's JSON
mapping), 200 then 429, the same counters as the gRPC call, bad bodies 400,
the check token, and no route without Envoy descriptors to read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from reference_examples import MESSAGING
from rls_support import T0

from ratekeeper.policy.envoy_config import load_envoy_config
from ratekeeper.server.app import build_app
from ratekeeper.server.service import Service
from ratekeeper.stores import MemoryStore
from support.clock import Clock

MARKETING = {
    "domain": "messaging",
    "descriptors": [
        {"entries": [{"key": "message_type", "value": "marketing"},
                     {"key": "to_number", "value": "2061111111"}]},
        {"entries": [{"key": "to_number", "value": "2061111111"}]},
    ],
}  # fmt: skip

Make = Callable[..., Any]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    """``make(policy, **build_app options)``: a client of the service's app, closed at the end."""
    made: list[tuple[Service, httpx.AsyncClient]] = []

    def start(policy: Any, **options: Any) -> httpx.AsyncClient:
        service = Service(store=MemoryStore(clock=Clock(T0)), policy=policy)
        transport = httpx.ASGITransport(app=build_app(service, **options))
        client = httpx.AsyncClient(transport=transport, base_url="http://ratekeeper")
        made.append((service, client))
        return client

    yield start
    for service, client in made:
        await client.aclose()
        await service.close()


def messaging(tmp_path: Path) -> Any:
    path = tmp_path / "messaging.yaml"
    path.write_text(MESSAGING)
    return load_envoy_config(path)


async def test_the_readme_request_is_answered_in_protobufs_json_200_then_429(
    make: Make, tmp_path: Path
) -> None:
    client = make(messaging(tmp_path))
    answers = [await client.post("/json", json=MARKETING) for _ in range(6)]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    first = answers[0].json()
    assert first["overallCode"] == "OK"
    assert first["statuses"][0]["currentLimit"] == {
        "requestsPerUnit": 5, "unit": "DAY", "name": "5/day",
    }  # fmt: skip
    assert first["statuses"][0]["limitRemaining"] == 4
    assert first["statuses"][1]["limitRemaining"] == 99
    sixth = answers[5].json()
    assert sixth["overallCode"] == "OVER_LIMIT"
    assert sixth["statuses"][0]["code"] == "OVER_LIMIT"
    assert json.loads(answers[5].text) == sixth


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Failed to load JSON"),
        (b'{"domain": "messaging", "descriptors": [{"entriez": []}]}', "entriez"),
        (b'{"domain": "", "descriptors": [{"entries": []}]}', "domain must not be empty"),
        (b'{"domain": "messaging"}', "descriptor list must not be empty"),
    ],
)
async def test_a_body_that_is_not_a_request_is_400_and_charges_nothing(
    make: Make, tmp_path: Path, body: bytes, message: str
) -> None:
    client = make(messaging(tmp_path))
    refused = await client.post("/json", content=body)
    after = (await client.post("/json", json=MARKETING)).json()

    assert refused.status_code == 400
    assert message in refused.json()["error"]["message"]
    assert after["statuses"][0]["limitRemaining"] == 4


async def test_with_a_check_token_json_needs_it_too(make: Make, tmp_path: Path) -> None:
    client = make(messaging(tmp_path), check_token="t0k3n-for-checks")
    without = await client.post("/json", json=MARKETING)
    with_it = await client.post(
        "/json", json=MARKETING, headers={"Authorization": "Bearer t0k3n-for-checks"}
    )
    assert (without.status_code, with_it.status_code) == (401, 200)


async def test_a_policy_without_envoy_descriptors_has_no_json_route(make: Make) -> None:
    client = make(None)  # the built-in policy
    assert (await client.post("/json", json=MARKETING)).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/json" not in paths


async def test_the_openapi_document_lists_json_when_served(make: Make, tmp_path: Path) -> None:
    client = make(messaging(tmp_path))
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/json"]) == {"post"}

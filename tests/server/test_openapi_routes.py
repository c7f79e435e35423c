"""``/openapi.json`` describes every route the app serves, and nothing it does not."""

from __future__ import annotations

import re
from typing import Any

import pytest
from service_client import MakeService, example

from ratekeeper.server.app import served_routes


def described(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }


def served(app: Any) -> set[tuple[str, str]]:
    """The app's routes, path parameters spelled as OpenAPI spells them (no converter)."""
    return {
        (method, re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path)) for method, path in served_routes(app)
    }


@pytest.mark.parametrize("admin_token", [None, "an-admin-token"], ids=["no-admin", "admin"])
async def test_every_route_served_is_described_and_every_description_served(
    make_service: MakeService, admin_token: str | None
) -> None:
    client = make_service(example("scanner"), admin_token=admin_token)
    response = await client.http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert served(client.app) == described(document)
    assert {("POST", "/v1/check"), ("POST", "/v1/check:batch"), ("GET", "/metrics")} <= served(
        client.app
    )


async def test_every_schema_referred_to_is_defined(make_service: MakeService) -> None:
    client = make_service(example("scanner"), admin_token="t")
    text = (await client.http.get("/openapi.json")).text
    schemas = (await client.http.get("/openapi.json")).json()["components"]["schemas"]
    referred = set(re.findall(r'"#/components/schemas/(\w+)"', text))
    assert referred
    assert referred <= set(schemas)


async def test_without_an_admin_token_admin_paths_are_404(make_service: MakeService) -> None:
    client = make_service(example("scanner"))
    for path in ("/admin/keys", "/admin/policy/reload", "/admin/"):
        response = await client.http.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert not any(path.startswith("/admin") for path in (await client.http.get(
        "/openapi.json")).json()["paths"])  # fmt: skip

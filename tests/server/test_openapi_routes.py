"""``/openapi.json`` describes every route the app serves, and nothing it does not.

Routes the app lists (``served_routes``, mounts walked) are compared with the
document both ways. The admin API routes inside one mounted app of its own
(authentication comes before its routing), so its part is also checked by
asking: each described path answers each described method, and any other
method is 405 there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from service_client import MakeService, example

from ratekeeper.server.app import served_routes

ADMIN_TOKEN = "an-admin-token-of-the-test"
PROBED = ("GET", "POST", "PUT", "PATCH", "DELETE")


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


@pytest.mark.parametrize("admin_token", [None, ADMIN_TOKEN], ids=["no-admin", "admin"])
async def test_every_route_served_is_described_and_every_description_served(
    make_service: MakeService, admin_token: str | None
) -> None:
    client = make_service(example("scanner"), admin_token=admin_token)
    response = await client.http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    listed, said = served(client.app), described(document)
    assert listed <= said
    unlisted = {(method, path) for method, path in said - listed}
    assert all(path.startswith("/admin/") for _method, path in unlisted), unlisted
    assert {("POST", "/v1/check"), ("POST", "/v1/check:batch"), ("GET", "/metrics")} <= listed


async def test_every_admin_path_described_answers_exactly_its_methods(
    make_service: MakeService,
) -> None:
    client = make_service(example("scanner"), admin_token=ADMIN_TOKEN)
    document = (await client.http.get("/openapi.json")).json()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path, operations in document["paths"].items():
        if not path.startswith("/admin/"):
            continue
        concrete = re.sub(r"\{\w+\}", "no-such-thing", path)
        for method in PROBED:
            response = await client.http.request(method, concrete, headers=auth)
            # 405 (not 404) for the other methods: the path is routed; 404 may then be
            # a described answer (no such key)
            allowed = method.lower() in operations
            assert (response.status_code != 405) == allowed, (method, path, response.text)


async def test_every_schema_referred_to_is_defined(make_service: MakeService) -> None:
    client = make_service(example("scanner"), admin_token="t")
    response = await client.http.get("/openapi.json")
    schemas = response.json()["components"]["schemas"]
    referred = set(re.findall(r'"#/components/schemas/(\w+)"', response.text))
    assert referred
    assert referred <= set(schemas)


async def test_without_an_admin_token_admin_paths_are_404(make_service: MakeService) -> None:
    client = make_service(example("scanner"))
    for path in ("/admin/keys", "/admin/policy/reload", "/admin/"):
        response = await client.http.get(path, headers={"Authorization": "Bearer x"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    paths = (await client.http.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith("/admin") for path in paths)

"""Every POST of the dashboard is CSRF-safe, and authentication comes before anything else.

A change needs the session's CSRF token in its form (an HMAC of the session:
another session's token or none is 403) and, when the browser sends an
``Origin``, this host's; nothing changes when either is wrong. Without
credentials, a page or action is the login form (or 401) whatever its
parameters, path or body: validation comes after authentication. The
service's app mounts the dashboard only with an admin token, as ``/admin``.
"""

from __future__ import annotations

import httpx
import pytest
from dashboard_support import BASE, TOKEN, block_a_client, is_login_form, log_in

from ratekeeper import MemoryStore
from ratekeeper.server.app import build_app
from ratekeeper.server.service import Service
from support.clock import Clock


async def test_unblocking_needs_the_csrf_token_of_this_session(
    client: httpx.AsyncClient, service: Service
) -> None:
    key = await block_a_client(service)
    csrf = await log_in(client)
    other = httpx.AsyncClient(transport=client._transport, base_url=BASE)
    async with other:
        other_csrf = await log_in(other)
    for form in ({"key": key}, {"key": key, "csrf": ""}, {"key": key, "csrf": other_csrf},
                 {"key": key, "csrf": csrf.upper()}):  # fmt: skip
        refused = await client.post("/dashboard/blocks/unblock", data=form)
        assert refused.status_code == 403, form
        assert "Nothing was changed." in refused.text
        assert [block.key for block in service.store.lockouts.blocks()] == [key]
    json_body = await client.post("/dashboard/blocks/unblock", json={"key": key, "csrf": csrf})
    assert json_body.status_code == 403
    assert [block.key for block in service.store.lockouts.blocks()] == [key]
    done = await client.post("/dashboard/blocks/unblock", data={"key": key, "csrf": csrf})
    assert (done.status_code, done.headers["location"]) == (303, "/dashboard?done=unblocked")
    assert service.store.lockouts.blocks() == []
    assert "The block is lifted." in (await client.get(done.headers["location"])).text


async def test_a_post_from_another_origin_is_refused_even_with_the_token(
    client: httpx.AsyncClient, service: Service
) -> None:
    key = await block_a_client(service)
    csrf = await log_in(client)
    for origin in ("https://evil.test", "null", "http://dash.test.evil.test"):
        refused = await client.post(
            "/dashboard/blocks/unblock", data={"key": key, "csrf": csrf},
            headers={"Origin": origin},
        )  # fmt: skip
        assert refused.status_code == 403, origin
    assert [block.key for block in service.store.lockouts.blocks()] == [key]
    same = await client.post(
        "/dashboard/blocks/unblock", data={"key": key, "csrf": csrf}, headers={"Origin": BASE}
    )
    assert same.status_code == 303
    assert service.store.lockouts.blocks() == []


async def test_a_script_posts_with_the_bearer_token_and_no_csrf_token(
    client: httpx.AsyncClient, service: Service
) -> None:
    key = await block_a_client(service)
    done = await client.post(
        "/dashboard/blocks/unblock", data={"key": key},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    assert done.status_code == 303
    assert service.store.lockouts.blocks() == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/dashboard/keys/ghost/revoke", b"{not a form"),
        ("POST", "/dashboard/blocks/unblock", b"key=" + b"x" * 20_000),
        ("POST", "/dashboard/nowhere", b""),
        ("DELETE", "/dashboard/keys/ghost", b""),
        ("PUT", "/dashboard", b""),
    ],
)
async def test_without_credentials_anything_but_a_page_is_401_before_it_is_read(
    client: httpx.AsyncClient, method: str, path: str, body: bytes
) -> None:
    response = await client.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert is_login_form(response.text)


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/keys/ghost?range=nonsense",
        "/dashboard/nowhere",
        "/dashboard/audit?since=x",
        "/dashboard/partials/rate",  # the overview's refresh: its script stops on this header
    ],
)
async def test_without_credentials_any_page_is_the_login_form_whatever_its_parameters(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert is_login_form(response.text)
    assert response.headers["x-ratekeeper-login"] == "required"


async def test_with_credentials_the_parameters_are_checked(client: httpx.AsyncClient) -> None:
    await log_in(client)
    assert (await client.get("/dashboard/nowhere")).status_code == 404
    assert (await client.get("/dashboard/keys/ghost")).status_code == 404
    assert (await client.get("/dashboard/audit?since=yesterday")).status_code == 422
    wrong_method = await client.put("/dashboard/keys")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "GET, HEAD")


async def test_the_favicon_and_the_stylesheet_are_served_to_anyone(
    client: httpx.AsyncClient,
) -> None:
    for name, kind in (("favicon.svg", "image/svg+xml"), ("dashboard.css", "text/css"),
                       ("dashboard.js", "text/javascript")):  # fmt: skip
        response = await client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.content
    assert (await client.get("/dashboard/static/secret.txt")).status_code == 404
    assert (await client.get("/dashboard/static/%2e%2e%2f_session.py")).status_code == 404
    assert (await client.get("/dashboardx")).status_code == 404


@pytest.mark.parametrize("admin_token", [None, TOKEN], ids=["no-token", "token"])
async def test_the_service_serves_the_dashboard_only_with_an_admin_token(
    admin_token: str | None,
) -> None:
    service = Service(store=MemoryStore(), admin_token=admin_token)
    app = build_app(service, admin_token=admin_token)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        dashboard = await http.get("/dashboard")
        admin = await http.get("/admin/keys?include_revoked=nonsense")
        if admin_token is None:
            assert (dashboard.status_code, admin.status_code) == (404, 404)
        else:
            assert dashboard.status_code == 200
            assert is_login_form(dashboard.text)
            assert admin.status_code == 401
            favicon = await http.get("/dashboard/static/favicon.svg")
            assert favicon.status_code == 200
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            overview = await http.get("/dashboard/", headers=bearer)
            assert "<h1>Overview</h1>" in overview.text
            assert "Usage analytics are off" in overview.text  # no registry: nothing counted
    await service.close()


async def test_ten_wrong_tokens_block_the_login_even_with_the_right_one_until_it_ends(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    wrong_form = [
        (await client.post("/dashboard/login", data={"token": "guess"})).status_code
        for _ in range(5)
    ]
    bearer = {"Authorization": "Bearer guess"}
    wrong_bearer = [(await client.get("/dashboard/", headers=bearer)).status_code for _ in range(5)]
    blocked = await client.post("/dashboard/login", data={"token": TOKEN})
    clock.t += 600  # the block's ten minutes

    assert wrong_form + wrong_bearer == [401] * 10
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"] == "600"
    assert "Too many wrong tokens from this address" in blocked.text
    assert await log_in(client)  # the block over, the right token lets in again

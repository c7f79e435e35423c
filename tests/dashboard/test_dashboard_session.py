"""Who may see the dashboard: the login form, the session cookie, the bearer token, logout.

Without credentials ``/dashboard`` answers with the login form itself (200,
not a redirect). The form's POST sets a session cookie (HttpOnly,
SameSite=Strict, Path=/dashboard, 12 hours) that is an HMAC of the admin
token and its end, so every replica with the same token accepts it and a
changed token ends it. Scripts send ``Authorization: Bearer``.
"""

from __future__ import annotations

import re

import httpx
import pytest
from dashboard_support import (
    BASE,
    T0,
    TOKEN,
    FixedAnalytics,
    dashboard_app,
    is_login_form,
    log_in,
)

from ratekeeper.server.dashboard._session import (
    LIFETIME,
    csrf_token,
    csrf_valid,
    new_session,
    session_valid,
)
from ratekeeper.server.service import Service
from support.clock import Clock

SESSION = re.compile(
    r"^rk_dashboard=(\d+)\.([A-Za-z0-9_-]+)\.([0-9a-f]{64}); HttpOnly; Max-Age=43200; "
    r"Path=/dashboard; SameSite=strict$"
)


async def test_without_a_session_the_dashboard_answers_the_login_form_itself(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert "location" not in response.headers
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-ratekeeper-login"] == "required"
    assert response.headers["cache-control"] == "no-store"
    assert is_login_form(response.text)
    assert '<label for="token">Admin token</label>' in response.text
    assert "set-cookie" not in response.headers


async def test_a_page_asked_without_a_session_is_the_form_leading_back_to_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/dashboard/keys/acme?range=day")
    assert response.status_code == 200
    assert is_login_form(response.text)
    assert '<input type="hidden" name="next" value="/dashboard/keys/acme?range=day">' in (
        response.text
    )


async def test_logging_in_sets_an_httponly_strict_session_cookie_for_12_hours(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/dashboard/login", data={"token": TOKEN, "next": "/dashboard/audit"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/audit"
    cookie = SESSION.match(response.headers["set-cookie"])
    assert cookie, response.headers["set-cookie"]
    assert int(cookie[1]) == T0 + LIFETIME
    assert TOKEN not in response.headers["set-cookie"]
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert "<h1>Overview</h1>" in page.text


async def test_a_wrong_token_is_refused_with_the_form_and_no_cookie(
    client: httpx.AsyncClient,
) -> None:
    for wrong in ("", "s3cret", TOKEN + "x", TOKEN.upper()):
        response = await client.post("/dashboard/login", data={"token": wrong})
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert "That is not the admin token." in response.text
        assert is_login_form(response.text)
    assert is_login_form((await client.get("/dashboard")).text)


async def test_login_sends_back_only_to_a_page_of_the_dashboard(
    client: httpx.AsyncClient,
) -> None:
    for elsewhere in ("https://evil.test/", "//evil.test/dashboard", "/admin/keys",
                      "/dashboard/../admin", "/dashboard//evil.test", "/dashboardx"):  # fmt: skip
        response = await client.post("/dashboard/login", data={"token": TOKEN, "next": elsewhere})
        assert (response.status_code, response.headers["location"]) == (303, "/dashboard"), (
            elsewhere
        )


async def test_a_login_posted_from_another_site_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/dashboard/login", data={"token": TOKEN}, headers={"Origin": "https://evil.test"}
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    same = await client.post("/dashboard/login", data={"token": TOKEN}, headers={"Origin": BASE})
    assert same.status_code == 303


async def test_the_bearer_token_shows_the_pages_to_scripts(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Overview</h1>" in response.text
    assert "set-cookie" not in response.headers
    for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", TOKEN):
        refused = await client.get("/dashboard", headers={"Authorization": wrong})
        assert refused.status_code == 401, wrong
        assert refused.headers["www-authenticate"] == 'Bearer realm="ratekeeper admin"'
        assert is_login_form(refused.text)


async def test_a_session_ends_after_12_hours(client: httpx.AsyncClient, clock: Clock) -> None:
    await log_in(client)
    clock.t = T0 + LIFETIME - 1
    assert "<h1>Overview</h1>" in (await client.get("/dashboard")).text
    clock.t = T0 + LIFETIME
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert is_login_form(response.text)
    assert "Your session has ended: log in again." in response.text


async def test_a_session_is_valid_on_every_replica_with_the_same_token_only(
    client: httpx.AsyncClient, service: Service, clock: Clock
) -> None:
    await log_in(client)
    cookie = client.cookies["rk_dashboard"]
    replica = httpx.ASGITransport(app=dashboard_app(service, FixedAnalytics(), clock))
    async with httpx.AsyncClient(transport=replica, base_url=BASE) as other:
        other.cookies.set("rk_dashboard", cookie, path="/dashboard")
        assert "<h1>Overview</h1>" in (await other.get("/dashboard")).text
        service.admin_token = "another-token-after-a-rotation"
        assert is_login_form((await other.get("/dashboard")).text)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda value: str(int(value.split(".")[0]) + 3600) + value[value.index(".") :],
        lambda value: value[:-1] + ("0" if value[-1] != "0" else "1"),
        lambda value: value.rpartition(".")[0],
        lambda value: "x" * 300,
        lambda value: "",
    ],
    ids=["later-expiry", "other-mac", "no-mac", "too-long", "empty"],
)
async def test_a_tampered_session_cookie_is_no_session(
    client: httpx.AsyncClient, tamper: object
) -> None:
    await log_in(client)
    value = client.cookies["rk_dashboard"]
    client.cookies.clear()
    client.cookies.set("rk_dashboard", tamper(value), path="/dashboard")  # type: ignore[operator]
    assert is_login_form((await client.get("/dashboard")).text)


async def test_logging_out_clears_the_cookie_and_needs_the_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    csrf = await log_in(client)
    refused = await client.post("/dashboard/logout", data={})
    assert refused.status_code == 403
    assert "<h1>Overview</h1>" in (await client.get("/dashboard")).text
    response = await client.post("/dashboard/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cleared = response.headers["set-cookie"]
    assert cleared.startswith('rk_dashboard=""; ')
    assert "Max-Age=0" in cleared
    assert "Path=/dashboard" in cleared
    assert "rk_dashboard" not in client.cookies
    assert is_login_form((await client.get("/dashboard")).text)


def test_session_and_csrf_tokens_are_hmacs_of_the_token() -> None:
    session = new_session(TOKEN, T0)
    assert session_valid(TOKEN, session, T0)
    assert not session_valid(TOKEN, session, T0 + LIFETIME)
    assert not session_valid("another-token", session, T0)
    assert new_session(TOKEN, T0) != session  # each login has its own nonce
    csrf = csrf_token(TOKEN, session)
    assert csrf_valid(TOKEN, session, csrf)
    assert not csrf_valid(TOKEN, new_session(TOKEN, T0), csrf)
    assert not csrf_valid("another-token", session, csrf)
    assert not csrf_valid(TOKEN, session, csrf.upper())

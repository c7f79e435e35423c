"""The dashboard in a real headless Chromium, against a running ``ratekeeper serve``.

Debian's ``chromium`` (``.ci/run`` installs it with ``chromium-driver``),
driven by Playwright from PyPI pointed at that binary
(``executable_path``; never ``playwright install``, which downloads a
browser). As root Chromium runs only with ``--no-sandbox``. Without
Chromium or Playwright these tests skip outside CI, saying why, and fail in
CI (``CI=true``), which must have installed them.

The service is the real command, on a free loopback port, with an admin
token, a registry on SQLite in the test's folder and a policy with a login
lockout. Traffic is driven first (a key used past its limit, anonymous
calls, two failed logins that block a client); then the browser logs in with
the keyboard, reads the charts' and tables' numbers, unblocks the client,
and logs out. Every console message of level warning or error and every
page error fails the test; screenshots are saved in the test's folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.loopback import LoopbackProcess, require_binary

TOKEN = "an-admin-token-of-the-browser-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BLOCKED_IP = "198.51.100.9"
#: usage analytics (``ratekeeper.server.analytics``) come with issue 13's analytics half:
#: with them the charts carry the traffic's numbers, without them they say they are off

POLICY = textwrap.dedent("""\
    version: 1
    name: browser
    anonymous_plan: anonymous
    limits:
      api: {by: api_key, algorithm: fixed_window}
      logins: {by: ip, rate: 100/minute}
    plans:
      anonymous: {limits: {api: 2/minute}}
      free: {limits: {api: 5/minute}}
      pro: {limits: {api: 50/minute}}
    categories:
      - {name: login, match: POST /login, charge: [logins]}
      - {name: api, match: /api/**, charge: [api]}
    lockouts:
      login:
        categories: [login]
        failure_status: [401]
        by: ip
        threshold: 2
        window: 15 minutes
        block: 15 minutes
    """)


def _chromium() -> Path:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    return require_binary(
        Path(found) if found else None,
        "chromium",
        "apt-get install -y chromium chromium-driver; .ci/run does it",
    )


def _require_playwright() -> None:
    if importlib.util.find_spec("playwright") is not None:
        return
    message = "playwright is not installed (the dev extra has it: pip install -e '.[dev]')"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}: CI=true, so this fails instead of skipping")
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = _chromium()
    _require_playwright()
    from playwright.sync_api import sync_playwright

    args = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:  # Chromium's sandbox refuses to run as root
        args.append("--no-sandbox")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LoopbackProcess]:
    """``ratekeeper serve`` with an admin token, a registry and the lockout policy."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, "utf-8")

    def command(port: int, directory: Path) -> list[str]:
        return [
            sys.executable, "-m", "ratekeeper", "serve", "--policy", str(policy),
            "--host", "127.0.0.1", "--port", str(port),
            "--registry", f"sqlite:///{directory / 'registry.sqlite3'}",
        ]  # fmt: skip

    env = {"RATEKEEPER_ADMIN_TOKEN": TOKEN}
    service = LoopbackProcess("ratekeeper", command, tmp_path / "service", env=env)
    with service:
        yield service


class Traffic:
    """What was sent and decided: allowed and refused decisions, the blocked client's block."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.allowed = 0
        self.refused = 0

    def check(self, **call: Any) -> int:
        answer = self.http.post("/v1/check", json=call)
        if answer.json()["allowed"]:
            self.allowed += 1
        else:
            self.refused += 1
        return answer.status_code

    def drive(self) -> str:
        """Traffic of a key past its limit, anonymous callers, a client locked out; its raw key."""
        created = self.http.post("/admin/keys", json={"plan": "free", "id": "acme"}, headers=AUTH)
        assert created.status_code == 201, created.text
        raw = str(created.json()["key"])
        key_call = {"method": "GET", "path": "/api/things", "client_ip": "203.0.113.7",
                    "headers": {"X-API-Key": raw}}  # fmt: skip
        assert [self.check(**key_call) for _ in range(7)] == [200] * 5 + [429] * 2
        anonymous = {"method": "GET", "path": "/api/things", "client_ip": "203.0.113.50"}
        assert [self.check(**anonymous) for _ in range(3)] == [200, 200, 429]
        login = {"method": "POST", "path": "/login", "client_ip": BLOCKED_IP}
        for _ in range(2):
            assert self.check(**login) == 200
            report = self.http.post("/v1/report", json={**login, "status": 401})
            assert report.status_code == 200, report.text
        assert self.check(**login) != 200  # blocked now
        return raw


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_an_operator_logs_in_reads_the_numbers_unblocks_a_client_and_logs_out(
    browser: Any, served: LoopbackProcess, tmp_path: Path
) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as http:
        operate(browser, served, tmp_path, Traffic(http))


def early_in_a_minute(most: float = 20.0) -> None:
    """Wait, if need be, until at most ``most`` seconds of the clock's minute have gone.

    The key's limit is a fixed window of one minute on the real clock: the key page
    must be read in the minute the traffic was driven, or its remaining starts afresh.
    The test takes 8-15 s (more on a busy machine): 40 s of the minute are left for it.
    """
    into = time.time() % 60
    if into > most:
        time.sleep(60 - into + 0.2)


def operate(browser: Any, served: LoopbackProcess, tmp_path: Path, traffic: Traffic) -> None:
    """What the operator does in the browser, once the traffic is driven."""
    early_in_a_minute()
    traffic.drive()
    (block,) = traffic.http.get("/admin/blocks", headers=AUTH).json()["blocks"]
    assert BLOCKED_IP in block["key"]
    shots = tmp_path / "screenshots"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    complaints: list[str] = []
    page.on(
        "console",
        lambda message: (
            complaints.append(f"console {message.type}: {message.text}")
            if message.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda error: complaints.append(f"page error: {error}"))

    # the login form, answered at /dashboard itself; logging in with the keyboard alone
    response = page.goto(f"{served.url}/dashboard")
    assert response is not None
    assert response.status == 200
    assert page.url == f"{served.url}/dashboard"
    token_field = page.get_by_label("Admin token")
    assert token_field.is_visible()
    page.screenshot(path=str(shots / "1-login.png"))
    assert page.evaluate("document.activeElement.id") == "token"  # focused first
    page.keyboard.type(TOKEN)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_role("heading", name="Overview").is_visible()
    (cookie,) = [c for c in context.cookies() if c["name"] == "rk_dashboard"]
    attributes = (cookie["httpOnly"], cookie["sameSite"], cookie["path"])
    assert attributes == (True, "Strict", "/dashboard")

    # the overview's numbers: traffic per second, top keys, the block
    def top_counted() -> bool:
        page.reload()
        return page.locator('table[data-top="requests"] tr[data-key="acme"]').count() == 1

    wait_until(top_counted, "the counts to reach the registry")
    rate = page.locator("#chart-rate")
    assert rate.locator('[data-series="allowed"]').get_attribute("data-total") == str(
        traffic.allowed
    )
    assert rate.locator('[data-series="refused"]').get_attribute("data-total") == str(
        traffic.refused
    )
    top = page.locator('table[data-top="requests"] tr[data-key="acme"]')
    assert top.get_attribute("data-value") == "7"
    refusers = page.locator('table[data-top="refusals"] tr[data-key="acme"]')
    assert refusers.get_attribute("data-value") == "2"
    rows = page.locator("tr[data-block]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-block") == block["key"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(shots / "2-overview.png"), full_page=True)

    # the chart refreshes itself (the script fetched it again)
    page.locator("#rate[data-updated]").wait_for(state="attached", timeout=15_000)

    # the key page: each limit with what is left now, its use against its limit
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("link", name="acme").click()
    assert page.get_by_role("heading", name="Key acme").is_visible()
    api = page.locator('tr[data-limit-name="api"]')
    assert (api.get_attribute("data-limit"), api.get_attribute("data-remaining")) == ("5", "0")
    usage = page.locator("#chart-usage")
    assert usage.get_attribute("data-used") == "5"
    assert usage.get_attribute("data-refused") == "2"
    assert usage.get_attribute("data-limit") == "5"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(shots / "3-key.png"), full_page=True)

    # unblock the locked-out client from the overview
    page.get_by_role("link", name="Overview").click()
    with page.expect_navigation():
        page.get_by_role("button", name=f"Unblock {block['key']}").click()
    assert page.url == f"{served.url}/dashboard?done=unblocked"
    assert page.get_by_text("The block is lifted.").is_visible()
    assert page.locator("tr[data-block]").count() == 0
    assert page.get_by_text("No client is blocked.").is_visible()
    page.screenshot(path=str(shots / "4-unblocked.png"), full_page=True)
    assert traffic.http.get("/admin/blocks", headers=AUTH).json() == {"blocks": []}
    (lifted,) = traffic.http.get("/admin/audit?kind=block.lift", headers=AUTH).json()["events"]
    assert (lifted["actor"], lifted["target"]) == ("dashboard@127.0.0.1", block["key"])
    assert traffic.check(method="POST", path="/login", client_ip=BLOCKED_IP) == 200

    # log out: the cookie is gone and the dashboard is the login form again
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert page.get_by_label("Admin token").is_visible()
    assert [c for c in context.cookies() if c["name"] == "rk_dashboard"] == []
    page.goto(f"{served.url}/dashboard/keys")
    assert page.get_by_label("Admin token").is_visible()
    page.screenshot(path=str(shots / "5-logged-out.png"))
    context.close()

    assert complaints == []
    assert sorted(path.name for path in shots.iterdir()) == [
        "1-login.png", "2-overview.png", "3-key.png", "4-unblocked.png", "5-logged-out.png",
    ]  # fmt: skip
    assert all(path.stat().st_size > 1000 for path in shots.iterdir())


def test_without_the_token_the_dashboard_is_the_login_form_and_admin_401(
    browser: Any, served: LoopbackProcess, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    complaints: list[str] = []
    page.on("pageerror", lambda error: complaints.append(str(error)))
    page.on(
        "console",
        lambda message: complaints.append(message.text) if message.type == "error" else None,
    )
    for path in ("/dashboard", "/dashboard/keys/acme", "/dashboard/audit?kind=key.create"):
        response = page.goto(served.url + path)
        assert response is not None
        assert response.status == 200
        assert page.get_by_label("Admin token").is_visible()
        assert page.get_by_role("button", name="Log in").is_visible()
        assert page.locator("nav").count() == 0
    page.screenshot(path=str(tmp_path / "login-form.png"))
    context.close()
    assert complaints == []
    with httpx.Client(base_url=served.url, timeout=10) as http:
        assert http.get("/admin/keys").status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        assert http.get("/admin/blocks", headers=wrong).status_code == 401

"""What the pages show: the numbers of the service and its analytics, in charts and tables.

The usage analytics are a stand-in with fixed numbers (``FixedAnalytics``);
the limiter, store and registry are real, so "remaining now", blocks, keys
and the audit log are the service's own. Every chart's numbers are read
from its ``data-*`` attributes and its table, as a test or a screen reader
reads them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dashboard_support import (
    T0,
    TOKEN,
    FixedAnalytics,
    NoAnalytics,
    Point,
    block_a_client,
    check,
    dashboard_app,
    log_in,
)

from ratekeeper.engine import LimitUsage
from ratekeeper.registry import Registry
from ratekeeper.server.dashboard._charts import nice_ceiling
from ratekeeper.server.dashboard._pages import period_limit
from ratekeeper.server.service import Service
from support.clock import Clock

NOW = int(T0) + 30  # half a minute into the first minute of 2026


def series_total(page: str, name: str) -> int:
    found = re.search(rf'data-series="{name}" data-total="(\d+)"', page)
    assert found, page
    return int(found[1])


def figure_attribute(page: str, name: str) -> str:
    found = re.search(rf'<figure class="chart" id="chart-usage"[^>]* {name}="([^"]*)"', page)
    assert found, page
    return found[1]


def add_key(registry: Registry, service: Service, key_id: str, plan: str, **extra: object) -> str:
    _, raw = registry.create_key(
        policy=service.policy,
        plan=plan,
        key_id=key_id,
        actor="test",
        **extra,  # type: ignore[arg-type]
    )
    service.limiter.use_keys(registry.entries(service.policy))
    return raw


# the overview


async def test_the_rate_chart_draws_the_recorders_seconds_with_their_numbers(
    client: httpx.AsyncClient, analytics: FixedAnalytics, clock: Clock
) -> None:
    clock.t = NOW
    analytics.seconds = [(NOW - 400, 9, 9), (NOW - 299, 3, 1), (NOW - 10, 5, 0), (NOW, 2, 4)]
    await log_in(client)
    page = (await client.get("/dashboard")).text
    assert ("recent", {"seconds": 300}) in analytics.asked
    assert series_total(page, "allowed") == 10  # the second 400 s ago is off the chart
    assert series_total(page, "refused") == 5
    values = re.search(
        r'data-series="refused" data-total="5" data-max="4" data-values="([\d,]+)"', page
    )
    assert values, page
    assert values[1].split(",")[0] == "1"
    assert values[1].split(",")[-1] == "4"
    assert len(values[1].split(",")) == 300
    table = re.findall(r"<tr><td>(\d\d:\d\d:\d\d)</td><td>(\d+)</td><td>(\d+)</td></tr>", page)
    assert table == [("23:55:31", "3", "1"), ("00:00:20", "5", "0"), ("00:00:30", "2", "4")]
    assert 'data-refresh="/dashboard/partials/rate" data-every="5"' in page
    assert '<script src="/dashboard/static/dashboard.js" defer></script>' in page
    partial = await client.get("/dashboard/partials/rate")
    assert partial.status_code == 200
    assert partial.text.startswith('<figure class="chart" id="chart-rate"')
    assert series_total(partial.text, "allowed") == 10


async def test_the_overview_says_when_there_is_nothing_to_show(
    client: httpx.AsyncClient,
) -> None:
    await log_in(client)
    page = (await client.get("/dashboard")).text
    assert "No requests in the last 5 minutes." in page
    assert "No requests in the last hour." in page
    assert "No refusals in the last hour." in page
    assert "No client is blocked." in page
    assert 'data-store="ok"' in page


async def test_without_analytics_the_overview_says_they_are_off(
    service: Service, clock: Clock
) -> None:
    app = dashboard_app(service, NoAnalytics(), clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dash.test") as http:
        page = await http.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "Usage analytics are off" in page.text
    assert "<figure" not in page.text
    assert page.text.count("No usage analytics on this service.") == 2


async def test_top_keys_by_requests_and_refusals_link_to_their_pages(
    client: httpx.AsyncClient, analytics: FixedAnalytics, clock: Clock
) -> None:
    analytics.top = {
        "requests": [("acme", 120), ("anonymous", 30), ("beta", 7)],
        "refusals": [("beta", 6), ("acme", 0)],
    }
    await log_in(client)
    page = (await client.get("/dashboard")).text
    since = datetime.fromtimestamp(T0, UTC) - timedelta(hours=1)
    assert ("top_keys", {"by": "requests", "since": since, "limit": 10}) in analytics.asked
    assert ("top_keys", {"by": "refusals", "since": since, "limit": 10}) in analytics.asked
    requests = re.search(r'<table class="top" data-top="requests">.*?</table>', page)
    assert requests
    rows = re.findall(r'<tr data-key="([^"]+)" data-value="(\d+)">', requests[0])
    assert rows == [("acme", "120"), ("anonymous", "30"), ("beta", "7")]
    assert '<a href="/dashboard/keys/acme">acme</a>' in requests[0]
    assert "anonymous <small>(callers without a key)</small>" in requests[0]
    refusals = re.search(r'<table class="top" data-top="refusals">.*?</table>', page)
    assert refusals
    assert re.findall(r'<tr data-key="([^"]+)" data-value="(\d+)">', refusals[0]) == [("beta", "6")]


async def test_active_blocks_are_listed_with_an_unblock_button(
    client: httpx.AsyncClient, service: Service, registry: Registry
) -> None:
    key = await block_a_client(service)
    csrf = await log_in(client)
    page = (await client.get("/dashboard")).text
    row = re.search(rf'<tr data-block="{re.escape(key)}">.*?</tr>', page)
    assert row, page
    assert "2026-01-01 00:15:00" in row[0]  # blocked for 15 minutes from T0
    assert f'<input type="hidden" name="key" value="{key}">' in row[0]
    assert f'<button type="submit" aria-label="Unblock {key}">Unblock</button>' in row[0]
    await client.post("/dashboard/blocks/unblock", data={"key": key, "csrf": csrf})
    page = (await client.get("/dashboard")).text
    assert "data-block=" not in page
    assert "No client is blocked." in page
    (event,) = registry.audit(kind="block.lift")
    assert (event.actor, event.target) == ("dashboard@127.0.0.1", key)
    again = await client.post("/dashboard/blocks/unblock", data={"key": key, "csrf": csrf})
    assert again.headers["location"] == "/dashboard?done=not-blocked"
    assert len(registry.audit(kind="block.lift")) == 1


# keys


async def test_the_keys_page_lists_the_registrys_and_the_policys_keys(
    client: httpx.AsyncClient, service: Service, registry: Registry
) -> None:
    add_key(registry, service, "acme", "pro", name="<script>alert(1)</script>")
    await log_in(client)
    page = (await client.get("/dashboard/keys")).text
    assert re.findall(r'<a href="/dashboard/keys/([^"]+)">', page) == ["acme", "demo-free"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page


async def test_the_key_page_shows_each_limit_with_what_is_left_now(
    client: httpx.AsyncClient, service: Service, registry: Registry, clock: Clock
) -> None:
    raw = add_key(registry, service, "acme", "pro")
    assert [await check(service, raw) for _ in range(3)] == [200] * 3
    await log_in(client)
    clock.t = T0 + 5
    page = (await client.get("/dashboard/keys/acme")).text
    limits = re.findall(
        r'<tr data-limit-name="(\w+)" data-limit="(\d+)" data-remaining="(\d+)">', page
    )
    assert limits == [("api", "10", "7"), ("slots", "4", "4")]
    assert '<dd data-plan="pro">pro</dd>' in page
    again = (await client.get("/dashboard/keys/acme")).text
    assert re.findall(r'data-remaining="(\d+)"', again) == ["7", "4"]  # reading took nothing
    policy_key = (await client.get("/dashboard/keys/demo-free")).text
    assert 'data-limit-name="api" data-limit="5" data-remaining="5"' in policy_key
    assert "declared in the policy file" in policy_key


async def test_utilization_is_used_against_the_limit_per_period(
    client: httpx.AsyncClient, service: Service, registry: Registry, analytics: FixedAnalytics,
    clock: Clock,
) -> None:  # fmt: skip
    add_key(registry, service, "acme", "pro")
    clock.t = NOW
    minute = datetime.fromtimestamp(T0, UTC)
    analytics.series = {
        "minute": [
            Point(minute - timedelta(minutes=2), allowed=8, cost=8, refused_rate=3),
            Point(minute, allowed=4, cost=4, refused_cap=1),
            Point(minute - timedelta(hours=2), allowed=99, cost=99),  # before the hour shown
        ],
        "hour": [Point(minute - timedelta(hours=1), allowed=500, cost=500)],
    }
    await log_in(client)
    page = (await client.get("/dashboard/keys/acme")).text
    asked = [args for name, args in analytics.asked if name == "usage_series"]
    start, end = minute - timedelta(minutes=59), minute + timedelta(seconds=30)
    assert asked == [{"key": "acme", "step": "minute", "start": start, "end": end}]
    assert figure_attribute(page, "data-used") == "12"
    assert figure_attribute(page, "data-refused") == "4"
    assert figure_attribute(page, "data-limit") == "10"  # api: 10/minute
    assert 'data-label="23:58" data-value="8"' in page
    assert 'data-label="00:00" data-value="4"' in page
    refusals = re.search(r'<table class="refusals">.*?</table>', page)
    assert refusals
    assert re.findall(r"<tr><th scope=\"row\">([\d: -]+)</th>((?:<td[^>]*>\d+</td>)+)</tr>",
                      refusals[0]) == [
        ("2026-01-01 00:00", '<td class="number">0</td><td class="number">1</td>'
         '<td class="number">0</td><td class="number">0</td><td class="number">0</td>'),
        ("2025-12-31 23:58", '<td class="number">3</td><td class="number">0</td>'
         '<td class="number">0</td><td class="number">0</td><td class="number">0</td>'),
    ]  # fmt: skip
    day = (await client.get("/dashboard/keys/acme?range=day")).text
    assert figure_attribute(day, "data-used") == "500"
    assert figure_attribute(day, "data-limit") == "600"  # 10/minute for 60 minutes
    month = (await client.get("/dashboard/keys/acme?range=month")).text
    assert figure_attribute(month, "data-limit") == "14400"
    assert "No requests with this key in the last 30 days." in month
    steps = [args["step"] for name, args in analytics.asked if name == "usage_series"]
    assert steps == ["minute", "hour", "minute", "day", "minute"]
    bad = await client.get("/dashboard/keys/acme?range=year")
    assert bad.status_code == 422
    assert "The range is hour, day or month." in bad.text


async def test_revoking_asks_first_then_revokes_and_audits(
    client: httpx.AsyncClient, service: Service, registry: Registry
) -> None:
    raw = add_key(registry, service, "acme", "pro")
    csrf = await log_in(client)
    asked = await client.post("/dashboard/keys/acme/revoke", data={"csrf": csrf})
    assert asked.status_code == 200
    assert "<h1>Revoke key acme?</h1>" in asked.text
    assert '<input type="hidden" name="confirm" value="yes">' in asked.text
    assert '<a class="cancel" href="/dashboard/keys/acme">Cancel</a>' in asked.text
    assert not registry.get_key("acme").revoked  # type: ignore[union-attr]
    assert await check(service, raw) == 200
    done = await client.post("/dashboard/keys/acme/revoke", data={"csrf": csrf, "confirm": "yes"})
    assert (done.status_code, done.headers["location"]) == (
        303,
        "/dashboard/keys/acme?done=revoked",
    )
    assert registry.get_key("acme").revoked  # type: ignore[union-attr]
    assert await check(service, raw) == 401  # this replica's limiter knows at once
    (event,) = registry.audit(kind="key.revoke")
    assert (event.actor, event.target) == ("dashboard@127.0.0.1", "acme")
    page = (await client.get(done.headers["location"])).text
    assert "The key is revoked" in page
    assert "This key is revoked" in page
    twice = await client.post("/dashboard/keys/acme/revoke", data={"csrf": csrf, "confirm": "yes"})
    assert twice.status_code == 409
    policy_key = await client.post(
        "/dashboard/keys/demo-free/revoke", data={"csrf": csrf, "confirm": "yes"}
    )
    assert policy_key.status_code == 409
    assert "declared in the policy file" in policy_key.text


async def test_changing_the_plan_asks_first_then_changes_it(
    client: httpx.AsyncClient, service: Service, registry: Registry
) -> None:
    raw = add_key(registry, service, "acme", "free")
    csrf = await log_in(client)
    page = (await client.get("/dashboard/keys/acme")).text
    assert '<label for="plan">Plan</label><select id="plan" name="plan">' in page
    assert '<option value="free" selected>free</option>' in page
    asked = await client.post("/dashboard/keys/acme/plan", data={"csrf": csrf, "plan": "pro"})
    assert "<h1>Move key acme to plan pro?</h1>" in asked.text
    assert '<input type="hidden" name="plan" value="pro">' in asked.text
    assert registry.get_key("acme").plan == "free"  # type: ignore[union-attr]
    done = await client.post(
        "/dashboard/keys/acme/plan", data={"csrf": csrf, "plan": "pro", "confirm": "yes"}
    )
    assert done.headers["location"] == "/dashboard/keys/acme?done=plan"
    assert registry.get_key("acme").plan == "pro"  # type: ignore[union-attr]
    decision = await service.limiter.check(path="/api/x", headers={"X-API-Key": raw})
    assert decision.plan == "pro"
    (event,) = registry.audit(kind="key.plan")
    assert (event.actor, event.detail) == ("dashboard@127.0.0.1", {"plan": "pro", "from": "free"})
    unknown = await client.post(
        "/dashboard/keys/acme/plan", data={"csrf": csrf, "plan": "gold", "confirm": "yes"}
    )
    assert unknown.status_code == 422
    assert "The policy has no plan &#x27;gold&#x27;" in unknown.text
    assert registry.get_key("acme").plan == "pro"  # type: ignore[union-attr]
    same = await client.post("/dashboard/keys/acme/plan", data={"csrf": csrf, "plan": "pro"})
    assert same.headers["location"] == "/dashboard/keys/acme?done=same-plan"


# the audit log


async def test_the_audit_log_is_filtered_by_since_key_and_kind(
    client: httpx.AsyncClient, service: Service, registry: Registry
) -> None:
    add_key(registry, service, "acme", "free")
    add_key(registry, service, "beta", "free")
    registry.revoke("beta", actor="cli:alice")
    await log_in(client)
    page = (await client.get("/dashboard/audit")).text
    assert re.findall(r'<tr data-kind="([\w.]+)">', page) == [
        "key.revoke",
        "key.create",
        "key.create",
    ]
    assert "3 events, newest first." in page
    by_key = (await client.get("/dashboard/audit?key=beta")).text
    assert re.findall(r'<tr data-kind="([\w.]+)">', by_key) == ["key.revoke", "key.create"]
    assert 'id="key" name="key" value="beta"' in by_key
    by_kind = (await client.get("/dashboard/audit?kind=key.revoke")).text
    assert re.findall(r"<td>(cli:alice|test)</td>", by_kind) == ["cli:alice"]
    later = (await client.get("/dashboard/audit?since=2999-01-01T00:00")).text
    assert "No audit events match these filters." in later
    bad = await client.get("/dashboard/audit?since=last+week")
    assert bad.status_code == 422
    assert "Since must be a time such as 2026-12-07T10:00 (UTC) or epoch seconds" in bad.text


# pieces


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (1, 1), (1.5, 2), (3, 5), (7, 10), (10, 10), (11, 20), (4001, 5000)],
)
def test_chart_scales_end_on_1_2_or_5(value: float, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_the_limit_of_a_period_is_the_tightest_rate_scaled_to_it() -> None:
    usage = [
        LimitUsage("api", 10, 10, 0.0, 60.0),
        LimitUsage("hourly", 1000, 1000, 0.0, 3600.0),
        LimitUsage("slots", 4, 4, None, None),
    ]
    assert period_limit(usage, 60) == 10
    assert period_limit(usage, 3600) == 600
    assert period_limit(usage, 86400) == 14400
    assert period_limit(usage[1:], 60) == 1000
    assert period_limit(usage[2:], 60) is None
    assert period_limit(None, 60) is None

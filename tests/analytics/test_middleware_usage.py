"""The ASGI middleware records like the service when given a registry, and exposes metrics.

Requests through ``RateLimitMiddleware(usage_registry=..., metrics=...)`` in
front of a small Starlette app; the counts are flushed at the app's lifespan
shutdown and read back through a service's admin API on the same registry.
Without ``usage_registry`` nothing is recorded.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from usage_support import POLICY, T0, UsageService

from ratekeeper import MemoryStore
from ratekeeper.integrations.asgi import RateLimitMiddleware
from ratekeeper.integrations.metrics import RateLimitMetrics
from ratekeeper.policy import policy_from_text
from ratekeeper.registry import Registry
from support.clock import Clock


async def things(request: Request) -> PlainTextResponse:
    return PlainTextResponse("things")


async def login(request: Request) -> PlainTextResponse:
    return PlainTextResponse("wrong password", status_code=401)


def inner_app() -> Starlette:
    return Starlette(
        routes=[Route("/api/things", things), Route("/login", login, methods=["POST"])]
    )


async def lifespan(app: Any) -> None:
    """Run the app's lifespan through: startup, then shutdown, as a server does."""
    messages = asyncio.Queue[dict[str, Any]]()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        messages.put_nowait({"type": kind})
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_requests_through_the_middleware_are_counted_and_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    clock = Clock(T0)
    metrics = RateLimitMetrics()
    app = RateLimitMiddleware(
        inner_app(), policy_from_text(POLICY, name="usage"), MemoryStore(clock=clock),
        metrics=metrics, usage_registry=url,
    )  # fmt: skip
    statuses: Counter[int] = Counter()
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for headers in [{"X-API-Key": "demo-free"}] * 8 + [{}] * 5 + [{"X-API-Key": "sk-x"}]:
            statuses[(await client.get("/api/things", headers=headers)).status_code] += 1
    assert statuses == {200: 8, 429: 5, 401: 1}
    await lifespan(app)  # the shutdown flushes
    assert app.recorder is None  # closed

    service = UsageService(url, clock=clock)
    try:
        window = {"from": str(int(T0)), "to": str(int(T0 + 60))}
        free = (await service.admin("/usage", key="demo-free", **window)).json()["points"]
        assert [(p["allowed"], p["refused_rate"]) for p in free] == [(5, 3)]
        anonymous = (await service.admin("/usage", key="anonymous", **window)).json()["points"]
        assert [(p["allowed"], p["refused_rate"], p["refused_unknown_key"]) for p in anonymous] == [
            (3, 2, 1)
        ]  # fmt: skip
        service.registry.roll_up(datetime.fromtimestamp(T0 + 60, UTC))
        hours = await service.admin(
            "/usage", step="hour", **{"from": str(int(T0)), "to": str(int(T0 + 60))}
        )
        totals = hours.json()["totals"]
        assert (totals["allowed"], totals["refused"]) == (
            statuses[200],
            statuses[429] + statuses[401],
        )
    finally:
        await service.close()

    found = samples(metrics.exposition().decode())
    assert found['ratekeeper_decisions_total{category="api",outcome="allowed",plan="free"}'] == 5
    assert found['ratekeeper_decisions_total{category="api",outcome="rate",plan="anonymous"}'] == 2
    assert found['ratekeeper_decisions_total{category="api",outcome="unknown_key",plan=""}'] == 1
    assert found["ratekeeper_decision_seconds_count"] == 14
    assert found["ratekeeper_active_blocks"] == 0
    assert found["ratekeeper_memory_store_keys"] == 2  # the counters of demo-free and the address


async def test_the_metrics_app_answers_the_text_format(tmp_path: Path) -> None:
    metrics = RateLimitMetrics()
    app = RateLimitMiddleware(inner_app(), policy_from_text(POLICY, name="usage"), metrics=metrics)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        await client.get("/api/things")
    scrape = httpx.AsyncClient(transport=httpx.ASGITransport(app=metrics.app), base_url="http://m")
    async with scrape:
        answer = await scrape.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=")
        found = samples(answer.text)
        assert (
            found['ratekeeper_decisions_total{category="api",outcome="allowed",plan="anonymous"}']
            == 1
        )
        assert (await scrape.post("/metrics")).status_code == 405
    assert app.recorder is None  # no registry: no analytics


async def test_a_login_lockout_started_by_responses_is_audited_and_so_is_its_end(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    clock = Clock(T0)
    app = RateLimitMiddleware(
        inner_app(), policy_from_text(POLICY, name="usage"), MemoryStore(clock=clock),
        usage_registry=url,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert [(await client.post("/login")).status_code for _ in range(3)] == [401, 401, 429]
    recorder = app.recorder
    assert recorder is not None
    assert recorder.flush()
    registry = Registry.open(url)
    try:
        (started,) = registry.audit(kind="block.start")
        assert (started.actor, started.detail["lockout"], started.detail["category"]) == (
            "ratekeeper", "login", "login"
        )  # fmt: skip
        assert started.detail["until"] == datetime.fromtimestamp(T0 + 900, UTC).isoformat().replace(
            "+00:00", "Z"
        )
        assert registry.audit(kind="block.end") == []
        clock.t = T0 + 901  # its end has come: noticed at the next flush
        assert recorder.flush()
        (ended,) = registry.audit(kind="block.end")
        assert ended.target == started.target
    finally:
        registry.close()
        app.close()


def wsgi_things(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status = "401 Unauthorized" if environ["PATH_INFO"] == "/login" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"things"]


async def test_the_wsgi_middleware_counts_and_records_as_the_asgi_one(tmp_path: Path) -> None:
    from ratekeeper.integrations.wsgi import RateLimitMiddleware as WsgiMiddleware

    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    clock = Clock(T0)
    metrics = RateLimitMetrics()
    app = WsgiMiddleware(
        wsgi_things, policy_from_text(POLICY, name="usage"), MemoryStore(clock=clock),
        metrics=metrics, usage_registry=url,
    )  # fmt: skip
    statuses: Counter[int] = Counter()
    transport = httpx.WSGITransport(app=app, remote_addr="203.0.113.9")
    with httpx.Client(transport=transport, base_url="http://app") as client:
        for headers in [{"X-API-Key": "demo-free"}] * 8 + [{}] * 5 + [{"X-API-Key": "sk-x"}]:
            statuses[client.get("/api/things", headers=headers).status_code] += 1
        logins = [client.post("/login").status_code for _ in range(3)]
    assert statuses == {200: 8, 429: 5, 401: 1}
    assert logins == [401, 401, 429]
    app.close()  # flushes; a WSGI app has no shutdown of its own
    assert app.recorder is None

    service = UsageService(url, clock=clock)
    try:
        window = {"from": str(int(T0)), "to": str(int(T0 + 60))}
        free = (await service.admin("/usage", key="demo-free", **window)).json()["points"]
        assert [(p["allowed"], p["refused_rate"]) for p in free] == [(5, 3)]
        (started,) = service.registry.audit(kind="block.start")
        assert started.detail["lockout"] == "login"
    finally:
        await service.close()
    found = samples(metrics.exposition().decode())
    assert found['ratekeeper_decisions_total{category="api",outcome="allowed",plan="free"}'] == 5
    assert found['ratekeeper_decisions_total{category="api",outcome="unknown_key",plan=""}'] == 1
    assert found["ratekeeper_active_blocks"] == 1  # the login lockout, read at scrape time

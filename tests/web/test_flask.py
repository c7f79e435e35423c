"""Flask behind the WSGI middleware: utmstack's limits, lockout and exemptions."""

from __future__ import annotations

import flask
import pytest
from webtools import EXAMPLES, GOOD_PASSWORD, wsgi_client

from ratekeeper import MemoryStore
from ratekeeper.integrations.wsgi import RateLimitMiddleware
from support.clock import Clock

ATTACKER, NEIGHBOUR = "192.168.1.100", "192.168.1.101"
BLOCKED = {
    "status": 429,
    "error": "Too Many Requests",
    "message": "Authentication blocked: IP 192.168.1.100 exceeded login attempt threshold",
}


@pytest.fixture
def app(store: MemoryStore) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.post("/api/authenticate")
    def login() -> tuple[dict[str, str], int]:
        if (flask.request.get_json(silent=True) or {}).get("password") == GOOD_PASSWORD:
            return {"token": "t"}, 200
        return {"error": "bad credentials"}, 401

    @app.get("/api/health")
    def health() -> str:
        return "ok"

    @app.get("/api/events")
    def events() -> dict[str, list[int]]:
        return {"events": [1, 2]}

    app.wsgi_app = RateLimitMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, policy=EXAMPLES / "utmstack.yaml", store=store
    )
    return app


def test_flask_responses_carry_the_limits_of_the_callers_role(app: flask.Flask) -> None:
    with wsgi_client(app) as client:
        admin = client.get("/api/events", headers={"X-API-Key": "demo-admin"})
        user = client.get("/api/events", headers={"Authorization": "Bearer demo-user"})
        health = client.get("/api/health")

    assert (admin.status_code, admin.json()) == (200, {"events": [1, 2]})
    assert (admin.headers["x-ratelimit-limit"], admin.headers["x-ratelimit-remaining"]) == (
        "600",
        "599",
    )
    assert user.headers["x-ratelimit-limit"] == "100"
    assert (health.status_code, "x-ratelimit-limit" in health.headers) == (200, False)


def test_flask_five_failed_logins_block_the_ip_for_15_minutes(
    app: flask.Flask, clock: Clock
) -> None:
    with wsgi_client(app, ip=ATTACKER) as attacker, wsgi_client(app, ip=NEIGHBOUR) as neighbour:
        failed = [attacker.post("/api/authenticate", json={"password": "guess"}) for _ in range(5)]
        clock.t += 10
        sixth = attacker.post("/api/authenticate", json={"password": GOOD_PASSWORD})
        other = neighbour.post("/api/authenticate", json={"password": GOOD_PASSWORD})
        clock.t += 890
        after = attacker.post("/api/authenticate", json={"password": GOOD_PASSWORD})

    assert [r.status_code for r in failed] == [401] * 5
    assert (sixth.status_code, sixth.json()) == (429, BLOCKED)
    assert sixth.headers["retry-after"] == "890"
    assert other.status_code == 200
    assert after.status_code == 200

"""``/v1/report``: the upstream's status fed to the request's lockouts, as the middleware does.

utmstack (SEEDS.md, provider 4): five failed logins (401 or 403) from one IP
within 15 minutes block its logins for 15 minutes.
"""

from __future__ import annotations

from service_client import IP, T0, MakeService, example

LOGIN = {"method": "POST", "path": "/api/authenticate", "client_ip": IP}
BLOCKED_BODY = {
    "status": 429,
    "error": "Too Many Requests",
    "message": f"Authentication blocked: IP {IP} exceeded login attempt threshold",
}


async def test_five_failures_reported_block_the_sixth_login(make_service: MakeService) -> None:
    client = make_service(example("utmstack"))
    reports = []
    for _ in range(5):
        assert (await client.check(LOGIN)).status_code == 200
        response = await client.post("/v1/report", {**LOGIN, "status": 401})
        assert response.status_code == 200
        reports.append(response.json())
    not_yet = {"lockouts": [{"name": "login", "failure": True, "blocked": False, "until": None}]}
    assert reports[:4] == [not_yet] * 4
    until = int(T0) + 900
    assert reports[4] == {
        "lockouts": [{"name": "login", "failure": True, "blocked": True, "until": until}]
    }

    sixth = await client.check(LOGIN)
    assert sixth.status_code == 429
    answer = sixth.json()
    assert (answer["allowed"], answer["retry_after"], answer["body"]) == (False, 900, BLOCKED_BODY)
    assert answer["headers"]["Retry-After"] == "900"
    other = await client.check({**LOGIN, "client_ip": "198.51.100.2"})
    assert other.status_code == 200  # the lockout counts by IP


async def test_a_success_is_no_failure(make_service: MakeService) -> None:
    client = make_service(example("utmstack"))
    for _ in range(6):
        answer = (await client.post("/v1/report", {**LOGIN, "status": 200})).json()
        assert answer == {
            "lockouts": [{"name": "login", "failure": False, "blocked": False, "until": None}]
        }
    assert (await client.check(LOGIN)).status_code == 200


async def test_a_request_without_lockouts_feeds_nothing(make_service: MakeService) -> None:
    client = make_service(example("utmstack"))
    call = {"method": "GET", "path": "/api/alerts", "headers": {"X-API-Key": "demo-user"}}
    response = await client.post("/v1/report", {**call, "client_ip": IP, "status": 401})
    assert (response.status_code, response.json()) == (200, {"lockouts": []})
    exempt = {"method": "GET", "path": "/api/health", "client_ip": IP, "status": 403}
    assert (await client.post("/v1/report", exempt)).json() == {"lockouts": []}

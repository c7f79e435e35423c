"""``--check-token``: ``/v1/*`` needs it (Bearer, or X-Ratekeeper-Token); operators' do not.
``--metrics-token``: ``/metrics`` needs it, and nothing else does."""

from __future__ import annotations

from service_client import MakeService, example, scan

TOKEN = "check-token-0123456789"


async def test_without_the_token_v1_is_401_and_nothing_is_charged(
    make_service: MakeService,
) -> None:
    client = make_service(example("scanner"), check_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Ratekeeper-Token": "wrong"},
                    {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):  # fmt: skip
        response = await client.post("/v1/check", scan(), headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
    for route in ("/v1/check:batch", "/v1/release", "/v1/report"):
        assert (await client.post(route, {})).status_code == 401
    answer = (await client.post("/v1/check", scan(), headers={"X-Ratekeeper-Token": TOKEN})).json()
    assert answer["headers"]["X-RateLimit-Remaining"] == "19"


async def test_the_token_as_bearer_or_in_its_own_header(make_service: MakeService) -> None:
    client = make_service(example("scanner"), check_token=TOKEN)
    bearer = await client.post("/v1/check", scan(), headers={"Authorization": f"Bearer {TOKEN}"})
    own = await client.post("/v1/check", scan(), headers={"X-Ratekeeper-Token": TOKEN})
    assert (bearer.status_code, own.status_code) == (200, 200)


async def test_operators_paths_need_no_token(make_service: MakeService) -> None:
    client = make_service(example("scanner"), check_token=TOKEN)
    for path in ("/healthz", "/metrics", "/openapi.json"):
        assert (await client.http.get(path)).status_code == 200


async def test_without_a_check_token_v1_is_open(make_service: MakeService) -> None:
    client = make_service(example("scanner"))
    assert (await client.check(scan())).status_code == 200


async def test_with_a_metrics_token_only_metrics_needs_it(make_service: MakeService) -> None:
    client = make_service(example("scanner"), metrics_token=TOKEN)
    refused = [
        (await client.http.get("/metrics", headers=headers)).status_code
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"})
    ]
    scraped = await client.http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused == [401] * 3
    assert scraped.status_code == 200
    assert "ratekeeper_decisions_total" in scraped.text
    assert (await client.check(scan())).status_code == 200  # /v1/* stays open
    assert (await client.http.get("/metricsx")).status_code == 404  # that path, not a prefix

"""The service counts every decision it makes, and the admin API reads the counts back.

N allowed and M refused ``/v1/check`` calls (a rate, an unknown key), then
``/admin/usage`` per minute, per hour and per day (rolled up), and
``/admin/usage/top``: the numbers are the decisions made, no more, no less.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from usage_support import AUTH, T0, UsageService, call

HOUR = T0 - T0 % 3600
DAY = T0 - T0 % 86400


@pytest.fixture
async def usage(tmp_path: Path) -> AsyncIterator[UsageService]:
    service = UsageService(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield service
    await service.close()


async def traffic(usage: UsageService) -> Counter[int]:
    """demo-free: 7 calls (5 allowed, 2 over its rate); anonymous: 4 (3, 1); an unknown
    key: 2; a minute later, demo-free once more (allowed). Returns the statuses."""
    statuses: Counter[int] = Counter()
    for body in [call("demo-free")] * 7 + [call()] * 4 + [call("sk-nope")] * 2:
        statuses[(await usage.check(body)).status_code] += 1
    usage.clock.t = T0 + 60
    statuses[(await usage.check(call("demo-free", cost=2))).status_code] += 1
    return statuses


def counts(point: dict[str, int]) -> tuple[int, int, int, int, int]:
    return (point["allowed"], point["refused_rate"], point["refused_unknown_key"],
            point["refused"], point["cost"])  # fmt: skip


async def test_minute_counts_are_the_decisions_made(usage: UsageService) -> None:
    statuses = await traffic(usage)
    assert statuses == {200: 9, 429: 3, 401: 2}
    usage.flush()
    window = {"from": str(int(T0)), "to": str(int(T0 + 120))}
    answer = await usage.admin("/usage", key="demo-free", **window)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["key"], body["step"], body["from"], body["to"]) == (
        "demo-free", "minute", "2023-11-14T22:14:00Z", "2023-11-14T22:16:00Z"
    )  # fmt: skip
    assert [counts(point) for point in body["points"]] == [(5, 2, 0, 2, 5), (1, 0, 0, 0, 2)]
    anonymous = (await usage.admin("/usage", key="anonymous", **window)).json()
    assert [counts(point) for point in anonymous["points"]] == [(3, 1, 2, 3, 3), (0, 0, 0, 0, 0)]
    everyone = (await usage.admin("/usage", category="api", **window)).json()
    assert everyone["totals"]["allowed"] == statuses[200]
    assert everyone["totals"]["refused"] == statuses[429] + statuses[401]
    assert everyone["totals"]["requests"] == sum(statuses.values())


async def test_rolled_up_hours_and_days_sum_the_minutes(usage: UsageService) -> None:
    statuses = await traffic(usage)
    usage.flush()
    assert usage.recorder.roll_up()  # at the store's clock, as the service's thread does
    hours = (
        await usage.admin(
            "/usage", step="hour", **{"from": str(int(HOUR)), "to": str(int(HOUR + 7200))}
        )
    ).json()
    assert [(p["allowed"], p["refused"]) for p in hours["points"]] == [(9, 5), (0, 0)]
    days = (
        await usage.admin(
            "/usage",
            step="day",
            key="demo-free",
            **{"from": str(int(DAY)), "to": str(int(DAY + 86400))},
        )
    ).json()
    assert [counts(point) for point in days["points"]] == [(6, 2, 0, 2, 7)]
    assert hours["totals"]["requests"] == sum(statuses.values())


async def test_top_keys_by_requests_and_by_refusals(usage: UsageService) -> None:
    await traffic(usage)
    usage.flush()
    top = (await usage.admin("/usage/top", since=str(int(T0)))).json()
    assert top["keys"] == [{"id": "demo-free", "count": 8}, {"id": "anonymous", "count": 6}]
    refusals = await usage.admin("/usage/top", by="refusals", since=str(int(T0)), limit="1")
    assert refusals.json()["keys"] == [{"id": "anonymous", "count": 3}]


async def test_key_limits_say_what_is_left_and_consume_nothing(usage: UsageService) -> None:
    for _ in range(2):
        await usage.check(call("demo-free"))
    for path in ("/keys/demo-free/limits", "/keys/demo-free/limits", "/keys/demo-free/usage"):
        answer = await usage.admin(path)
        assert answer.status_code == 200
        (limit,) = answer.json()["limits"]
        assert (limit["name"], limit["limit"], limit["remaining"]) == ("api", 5, 3)
    assert (await usage.admin("/keys/nobody/limits")).status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/usage", {"step": "week"}, "step must be minute, hour or day, got 'week'"),
        ("/usage", {"from": "yesterday"}, "from must be ISO 8601 or epoch seconds"),
        ("/usage", {"from": "100", "to": "50"}, "the end of a series must be after its start"),
        ("/usage", {"step": "minute", "from": "0"}, "over 10080 points"),
        ("/usage", {"keys": "x"}, "unknown parameter 'keys'"),
        ("/usage/top", {"by": "cost"}, "by must be requests or refusals"),
        ("/usage/top", {"limit": "0"}, "limit must be 1 to 100"),
        ("/usage/top", {"since": "1e99"}, "since is out of range"),
    ],
)
async def test_bad_parameters_are_422_and_no_token_is_401_first(
    usage: UsageService, path: str, params: dict[str, str], message: str
) -> None:
    answer = await usage.admin(path, **params)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_request"
    assert message in answer.json()["error"]["message"]
    unauthenticated = await usage.http.get(f"/admin{path}", params=params)
    assert unauthenticated.status_code == 401
    wrong = await usage.http.get(
        f"/admin{path}", params=params, headers={"Authorization": AUTH["Authorization"] + "x"}
    )
    assert wrong.status_code == 401

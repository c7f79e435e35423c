"""``GET /metrics``: decisions counted by plan, category and outcome word; no per-caller labels."""

from __future__ import annotations

import re

from service_client import MakeService, example, scan

from ratekeeper.stores import RedisStore


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample in a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_decisions_are_counted_by_plan_category_and_outcome(
    make_service: MakeService,
) -> None:
    client = make_service(example("scanner"))
    for _ in range(20):
        await client.check(scan())
    await client.check(scan())  # the 21st scan: limited
    await client.check(scan("demo-pro", cost=3))
    await client.check(scan("sk-unknown"))
    await client.post("/v1/check:batch", [scan("demo-pro"), scan("demo-pro")])
    response = await client.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    decisions = {name: value for name, value in found.items() if "decisions_total" in name}
    assert decisions == {
        'ratekeeper_decisions_total{category="scans",outcome="allowed",plan="free"}': 20.0,
        'ratekeeper_decisions_total{category="scans",outcome="rate",plan="free"}': 1.0,
        'ratekeeper_decisions_total{category="scans",outcome="allowed",plan="pro"}': 3.0,
        'ratekeeper_decisions_total{category="scans",outcome="unknown_key",plan=""}': 1.0,
    }
    assert found["ratekeeper_decision_seconds_count"] == 25.0
    assert found['ratekeeper_decision_seconds_bucket{le="+Inf"}'] == 25.0
    assert found["ratekeeper_store_degraded"] == 0.0
    assert "ratekeeper_store_errors_total" not in found  # the memory store never fails
    for caller in ("demo-free", "demo-pro", "sk-unknown", "203.0.113.7", "/api/scans"):
        assert caller not in response.text


async def test_each_service_counts_apart(make_service: MakeService) -> None:
    one, two = make_service(example("scanner")), make_service(example("scanner"))
    await one.check(scan())
    text = (await two.http.get("/metrics")).text
    assert "ratekeeper_decisions_total{" not in text


async def test_a_failing_redis_store_shows_degraded_and_its_errors(
    make_service: MakeService, unused_tcp_port: int
) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{unused_tcp_port}/0", on_error="open")
    client = make_service(example("scanner"), store=store)
    assert (await client.check(scan())).status_code == 200  # failing open
    found = samples((await client.http.get("/metrics")).text)
    assert found["ratekeeper_store_degraded"] == 1.0
    assert found["ratekeeper_store_errors_total"] >= 1.0
    outcome = re.escape('{category="scans",outcome="allowed",plan="free"}')  # failing open
    assert any(re.fullmatch("ratekeeper_decisions_total" + outcome, name) for name in found)

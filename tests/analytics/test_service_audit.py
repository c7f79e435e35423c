"""What the service writes to the audit log besides key changes, and its Prometheus numbers.

A block that ``/v1/report`` starts (``block.start``), lifted by hand
(``block.lift``, and then no ``block.end``) or reaching its end
(``block.end``, noticed at a flush); the store failing (``store.failure``);
``ratekeeper_active_blocks``, the memory store's keys and evictions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from usage_support import AUTH, IP, T0, UsageService, call

from ratekeeper import MemoryStore
from ratekeeper.stores import RedisStore
from ratekeeper.stores.redis.outage import Outage
from support.clock import Clock

LOGIN = {"method": "POST", "path": "/login", "client_ip": IP}


@pytest.fixture
async def usage(tmp_path: Path) -> AsyncIterator[UsageService]:
    service = UsageService(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    yield service
    await service.close()


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def block_login(usage: UsageService) -> str:
    """Two failed logins reported: the lockout blocks the address. Its block key."""
    for _ in range(2):
        answer = await usage.http.post("/v1/report", json={**LOGIN, "status": 401})
        assert answer.status_code == 200
    assert answer.json()["lockouts"][0]["blocked"] is True
    (block,) = (await usage.admin("/blocks")).json()["blocks"]
    return str(block["key"])


async def test_a_reported_block_is_audited_with_its_end(usage: UsageService) -> None:
    key = await block_login(usage)
    await usage.http.post("/v1/report", json={**LOGIN, "status": 401})  # blocked already: not again
    usage.flush()
    events = (await usage.admin("/audit", kind="block.start")).json()["events"]
    assert [(event["actor"], event["target"]) for event in events] == [("ratekeeper", key)]
    assert events[0]["detail"] == {
        "lockout": "login", "until": "2023-11-14T22:29:00Z", "streak": 1, "category": "login",
        "key_id": None,
    }  # fmt: skip
    found = samples((await usage.http.get("/metrics")).text)
    assert found["ratekeeper_active_blocks"] == 1
    usage.clock.t = T0 + 900
    usage.flush()
    ended = (await usage.admin("/audit", kind="block.end")).json()["events"]
    assert [(event["target"], event["detail"]["lockout"]) for event in ended] == [(key, "login")]
    assert samples((await usage.http.get("/metrics")).text)["ratekeeper_active_blocks"] == 0


async def test_a_block_lifted_by_hand_has_no_end_row(usage: UsageService) -> None:
    key = await block_login(usage)
    usage.flush()
    lifted = await usage.http.delete(f"/admin/blocks/{quote(key, safe='')}", headers=AUTH)
    assert lifted.status_code == 200
    usage.clock.t = T0 + 900
    usage.flush()
    kinds = [event["kind"] for event in (await usage.admin("/audit")).json()["events"]]
    assert kinds == ["block.start", "block.lift"]


async def test_memory_store_keys_and_evictions_are_scraped(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = MemoryStore(clock=clock, max_keys=2)
    usage = UsageService(f"sqlite:///{tmp_path / 'r.sqlite3'}", store=store, clock=clock)
    try:
        for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            assert (await usage.check({**call(), "client_ip": address})).status_code == 200
        found = samples((await usage.http.get("/metrics")).text)
        assert found["ratekeeper_memory_store_keys"] == 2
        assert found["ratekeeper_memory_store_evictions_total"] == 1
        assert (
            found['ratekeeper_decisions_total{category="api",outcome="allowed",plan="anonymous"}']
            == 3
        )
    finally:
        await usage.close()


async def test_a_failing_store_is_audited(
    tmp_path: Path, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{unused_tcp_port}/0", on_error="open")
    usage = UsageService(f"sqlite:///{tmp_path / 'r.sqlite3'}", store=store)
    try:
        with caplog.at_level(logging.WARNING, logger="ratekeeper.redis"):
            for _ in range(3):
                assert (await usage.check(call())).status_code == 200  # failing open
        usage.flush()
        (failure,) = (await usage.admin("/audit", kind="store.failure")).json()["events"]
        assert (failure["actor"], failure["target"]) == ("ratekeeper", "store")
        assert re.match(r"\w+(Error|Exception): ", failure["detail"]["error"])
    finally:
        await usage.close()


def test_an_outage_tells_its_watchers_once_per_incident() -> None:
    outage = Outage("open")
    told: list[tuple[bool, str]] = []
    outage.watch(lambda failing, what: told.append((failing, what)))
    for _ in range(3):
        outage.failed(ConnectionError("refused"))
    outage.recovered()
    outage.recovered()
    assert told == [(True, "ConnectionError: refused"), (False, "3 failed calls so far")]

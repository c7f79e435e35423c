"""The three faces against a real server: httpx sync and async transports, the requests adapter.

The server is real (a scripted upstream under uvicorn on loopback); the
sleeps are not: each face is given a sleep that records the wait and moves a
made-up clock, so a 30 s ``Retry-After`` costs no time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import hishel
import httpx
import pytest
import requests
from client_servers import ScriptedUpstream
from hishel.httpx import CacheTransport

from ratekeeper.client import (
    AsyncRetryTransport,
    RetryAdapter,
    RetryError,
    RetryTransport,
    WaitEvent,
)

Upstream = tuple[str, ScriptedUpstream]


class FakeTime:
    """A clock that moves only when slept on, and the sleeps it was asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def options(self) -> dict[str, object]:
        return {"clock": self.clock, "wall_clock": self.wall, "sleep": self.sleep,
                "async_sleep": self.async_sleep, "random": lambda: 0.5}  # fmt: skip


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def test_sync_transport_waits_the_retry_after_and_delivers_the_answer(
    upstream: Upstream, fake: FakeTime
) -> None:
    url, app = upstream
    app.scripts["/x"] = [(429, {"Retry-After": "30"}), (200, {})]
    events: list[WaitEvent] = []
    transport = RetryTransport(on_wait=events.append, **fake.options())  # type: ignore[arg-type]
    with httpx.Client(transport=transport, base_url=url) as client:
        response = client.get("/x")
    assert response.status_code == 200
    assert response.json() == {"path": "/x", "count": 2}
    assert fake.slept == [30.5]  # 30 s and half the most jitter (1 s)
    assert [(e.reason, e.status) for e in events] == [("retry-after", 429)]


def test_max_retries_is_respected_exactly(upstream: Upstream, fake: FakeTime) -> None:
    url, app = upstream
    app.scripts["/busy"] = [(503, {"Retry-After": "1"})]
    transport = RetryTransport(max_retries=3, **fake.options())  # type: ignore[arg-type]
    with (
        httpx.Client(transport=transport, base_url=url) as client,
        pytest.raises(RetryError) as raised,
    ):
        client.get("/busy")
    assert len(app.hits_of("/busy")) == 4
    assert raised.value.attempts == 4
    assert raised.value.waited == pytest.approx(3 * 1.05)
    assert raised.value.response.status_code == 503
    assert raised.value.response.json() == {"path": "/busy", "count": 4}


def test_a_wait_over_max_wait_raises_at_once_with_the_response(
    upstream: Upstream, fake: FakeTime
) -> None:
    url, app = upstream
    app.scripts["/slow"] = [(429, {"Retry-After": "3600"})]
    transport = RetryTransport(max_wait=60, **fake.options())  # type: ignore[arg-type]
    with (
        httpx.Client(transport=transport, base_url=url) as client,
        pytest.raises(RetryError, match="over max_wait") as raised,
    ):
        client.get("/slow")
    assert fake.slept == []
    assert (raised.value.attempts, raised.value.waited) == (1, 0.0)
    assert raised.value.response.headers["retry-after"] == "3600"


def test_a_streamed_body_is_never_sent_again(upstream: Upstream, fake: FakeTime) -> None:
    url, app = upstream
    app.scripts["/upload"] = [(429, {"Retry-After": "1"}), (200, {})]
    transport = RetryTransport(**fake.options())  # type: ignore[arg-type]
    with httpx.Client(transport=transport, base_url=url) as client:
        streamed = client.post("/upload", content=iter([b"a", b"b"]))
        assert streamed.status_code == 429  # delivered as it came: it cannot be replayed
        given = client.post("/upload", content=b"ab")
    assert given.status_code == 200
    assert [hit.body for hit in app.hits_of("/upload")] == [b"ab", b"ab"]


def test_a_post_is_retried_on_429_not_on_503(upstream: Upstream, fake: FakeTime) -> None:
    url, app = upstream
    app.scripts["/a"] = [(429, {"Retry-After": "1"}), (200, {})]
    app.scripts["/b"] = [(503, {"Retry-After": "1"}), (200, {})]
    transport = RetryTransport(**fake.options())  # type: ignore[arg-type]
    with httpx.Client(transport=transport, base_url=url) as client:
        assert client.post("/a", json={"n": 1}).status_code == 200
        assert client.post("/b", json={"n": 1}).status_code == 503
    assert len(app.hits_of("/a")) == 2
    assert len(app.hits_of("/b")) == 1


async def test_async_transport_is_the_same_core(upstream: Upstream, fake: FakeTime) -> None:
    url, app = upstream
    app.scripts["/x"] = [(429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "8"}), (200, {})]
    transport = AsyncRetryTransport(max_retries=1, **fake.options())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=url) as client:
        assert (await client.get("/x")).status_code == 200
        app.scripts["/y"] = [(429, {"Retry-After": "2"})]
        with pytest.raises(RetryError) as raised:
            await client.get("/y")
    assert fake.slept == [8.4, 2.1]  # 8 s + half of 0.8 s; 2 s + half of 0.2 s
    assert raised.value.attempts == 2
    assert raised.value.response.json() == {"path": "/y", "count": 2}


def test_requests_adapter_waits_retries_and_gives_up_alike(
    upstream: Upstream, fake: FakeTime
) -> None:
    url, app = upstream
    app.scripts["/x"] = [(429, {"Retry-After": "4"}), (200, {})]
    app.scripts["/never"] = [(429, {"Retry-After": "1"})]
    adapter = RetryAdapter(max_retries=2, **fake.options())  # type: ignore[arg-type]
    with requests.Session() as session:
        session.mount("http://", adapter)
        response = session.get(url + "/x", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"path": "/x", "count": 2}
        with pytest.raises(RetryError) as raised:
            session.post(url + "/never", data=b"payload", timeout=10)
        streamed = session.post(url + "/never", data=iter([b"p"]), timeout=10)
    # 4 s, 1 s, 1 s as asked (plus half the jitter), then the streamed POST's pacing wait: the
    # last 429 spent the quota for 1 s and its 5 % of jitter
    assert fake.slept == [4.2, 1.05, 1.05, 1.0]
    assert raised.value.attempts == 3
    assert raised.value.response.status_code == 429
    assert raised.value.response.json()["path"] == "/never"
    assert streamed.status_code == 429
    assert len(app.hits_of("/never")) == 4  # 3 of the POST with bytes, 1 of the stream


def test_requests_adapter_paces_on_the_quota(upstream: Upstream, fake: FakeTime) -> None:
    url, app = upstream
    app.scripts["/q"] = [(200, {"RateLimit": '"api";r=0;t=6'}), (200, {})]
    with requests.Session() as session:
        session.mount("http://", RetryAdapter(**fake.options()))  # type: ignore[arg-type]
        assert session.get(url + "/q", timeout=10).status_code == 200
        assert session.get(url + "/q", timeout=10).status_code == 200
    assert fake.slept == [6.0]  # the second waited for the reset, spending no 429


# --------------------------------------------------------------------------- #
# Caching: hishel around the retry transport.                                  #
# --------------------------------------------------------------------------- #


@pytest.fixture
def cache_storage() -> Iterator[hishel.SqliteStorage]:
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    yield hishel.SqliteStorage(connection=connection)
    connection.close()


def test_a_cached_answer_costs_no_quota(
    upstream: Upstream, fake: FakeTime, cache_storage: hishel.SqliteStorage
) -> None:
    url, app = upstream
    app.scripts["/doc"] = [(429, {"Retry-After": "2"}), (200, {"Cache-Control": "max-age=60"})]
    retrying = RetryTransport(**fake.options())  # type: ignore[arg-type]
    transport = CacheTransport(next_transport=retrying, storage=cache_storage)
    with httpx.Client(transport=transport, base_url=url) as client:
        first = client.get("/doc")
        again = client.get("/doc")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json() == {"path": "/doc", "count": 2}
    assert len(app.hits_of("/doc")) == 2  # the 429, its retry; the second GET never left
    assert fake.slept == [2.1]

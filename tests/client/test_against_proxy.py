"""The client against a real ``ratekeeper proxy`` on loopback: real waits, small policies.

These tests take real time (the policies' windows are 2 s): what they pin is
what happens on the wire when the client meets a real rate limiter, the
thing a fake clock cannot show. The bounds they assert are loose where the
machine's speed enters (a request's round trip), exact where it does not
(statuses, counts of 429s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from client_servers import AsyncWireLog, ScriptedUpstream, WireLog, policy_text, proxy_for

from ratekeeper.client import AsyncRetryTransport, RetryError, RetryTransport, WaitEvent
from support.loopback import LoopbackProcess

LIMIT, WINDOW = 4, 2.0  # 4 requests per 2 s, an exact sliding log


@pytest.fixture
def proxy(upstream: tuple[str, ScriptedUpstream], tmp_path: Path) -> Iterator[LoopbackProcess]:
    """``ratekeeper proxy`` limiting every path to 4 per 2 s (the X-RateLimit trio)."""
    with proxy_for(upstream[0], policy_text(f"{LIMIT}/2s"), tmp_path) as process:
        yield process


@pytest.fixture(params=["x-ratelimit", "ietf"])
def any_style_proxy(
    request: pytest.FixtureRequest, upstream: tuple[str, ScriptedUpstream], tmp_path: Path
) -> Iterator[LoopbackProcess]:
    """The same limit, in either header style (the trio, or IETF draft-10 ``RateLimit``)."""
    with proxy_for(upstream[0], policy_text(f"{LIMIT}/2s", request.param), tmp_path) as process:
        yield process


async def test_a_paced_crowd_spends_three_limits_worth_with_at_most_one_429(
    any_style_proxy: LoopbackProcess,
) -> None:
    proxy = any_style_proxy
    wire = AsyncWireLog()
    transport = AsyncRetryTransport(wire, max_retries=10)
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url=proxy.url, timeout=10) as client:
        responses = await asyncio.gather(*(client.get(f"/api/{n}") for n in range(3 * LIMIT)))
    elapsed = time.monotonic() - started
    assert [response.status_code for response in responses] == [200] * (3 * LIMIT)
    assert wire.count(429) <= 1
    assert wire.count(200) == 3 * LIMIT
    # 3 limits' worth needs 2 windows at least; each wait adds at most 1 s of rounding
    # (whole seconds on the wire) and 10 % of jitter
    assert 2 * WINDOW - 0.1 <= elapsed <= 2 * (WINDOW * 1.1 + 1) + 1.5


def test_a_paced_sync_client_spends_no_429(proxy: LoopbackProcess) -> None:
    wire = WireLog()
    with httpx.Client(transport=RetryTransport(wire), base_url=proxy.url, timeout=10) as client:
        statuses = [client.get(f"/api/{n}").status_code for n in range(3 * LIMIT)]
    assert statuses == [200] * (3 * LIMIT)
    assert wire.count(429) <= 1


async def test_without_pacing_every_retry_after_is_honoured(proxy: LoopbackProcess) -> None:
    wire = AsyncWireLog()
    waits: list[WaitEvent] = []
    transport = AsyncRetryTransport(wire, pace=False, max_retries=20, on_wait=waits.append)
    async with httpx.AsyncClient(transport=transport, base_url=proxy.url, timeout=10) as client:
        responses = await asyncio.gather(*(client.get(f"/api/{n}") for n in range(3 * LIMIT)))
    assert [response.status_code for response in responses] == [200] * (3 * LIMIT)
    refused = [sent for sent in wire.wire if sent.status == 429]
    assert refused  # without pacing the crowd meets 429s
    for answer in refused:
        assert answer.retry_after is not None
        sends = wire.sends_of(answer.request)
        later = [sent.sent for sent in sends if sent.sent > answer.sent]
        assert later, "every 429 was retried"
        assert min(later) - answer.sent >= int(answer.retry_after)  # never earlier
    assert {event.reason for event in waits} == {"retry-after"}


async def test_fifty_tasks_do_not_all_retry_in_the_same_10_ms(
    upstream: tuple[str, ScriptedUpstream], tmp_path: Path
) -> None:
    with proxy_for(upstream[0], policy_text("25/1s"), tmp_path) as proxy:
        wire = AsyncWireLog()
        transport = AsyncRetryTransport(wire, pace=False, max_retries=10)
        async with httpx.AsyncClient(transport=transport, base_url=proxy.url, timeout=10) as client:
            responses = await asyncio.gather(*(client.get(f"/api/{n}") for n in range(50)))
    assert [response.status_code for response in responses] == [200] * 50
    refused = {sent.request: sent.sent for sent in wire.wire if sent.status == 429}
    assert len(refused) >= 20
    retries = sorted(
        min(s.sent for s in wire.sends_of(request) if s.sent > at)
        for request, at in refused.items()
    )
    most_in_10_ms = max(
        sum(1 for other in retries if start <= other < start + 0.010) for start in retries
    )
    assert most_in_10_ms <= len(retries) // 2, (most_in_10_ms, retries)
    assert retries[-1] - retries[0] >= 0.05  # spread over the jitter's 100 ms


def test_a_wait_over_max_wait_gives_up_at_once_with_the_429(
    upstream: tuple[str, ScriptedUpstream], tmp_path: Path
) -> None:
    with proxy_for(upstream[0], policy_text("1/minute"), tmp_path) as proxy:
        transport = RetryTransport(max_wait=5)
        with httpx.Client(transport=transport, base_url=proxy.url, timeout=10) as client:
            assert client.get("/api/a").status_code == 200
            started = time.monotonic()
            with pytest.raises(RetryError) as raised:
                client.get("/api/b")
            elapsed = time.monotonic() - started
    assert elapsed < 2.0  # no sleeping: a 60 s wait is over max_wait
    assert raised.value.attempts == 1
    assert raised.value.waited == 0.0
    assert raised.value.response.status_code == 429
    assert int(raised.value.response.headers["retry-after"]) > 5

"""The bounds of algorithms/bounds.py: enforced wherever a rate or a cost comes in.

A rate past what its algorithm counts exactly on every store is a ``ValueError``
from ``RateLimiter`` (strings and ``Rate`` values alike) and a ``PolicyError``
naming file, line and field from the loader; a cost past it is refused before
anything is counted. At the bound itself everything is accepted. (Redis: the
same refusals in tests/real_redis/test_redis_numbers.py, and the edge values
in the contract vectors.)
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest

from ratekeeper import AsyncRateLimiter, MemoryStore, PolicyError, RateLimiter, algorithms, limit
from ratekeeper.algorithms import ALGORITHMS
from ratekeeper.limiter import Limiter
from ratekeeper.policy import policy_from_text
from ratekeeper.rates import Rate
from ratekeeper.stores import LimitSpec
from support.clock import Clock

DAY_NS = 86_400 * 1_000_000_000
MAX_WINDOW_NS = 365 * DAY_NS
BOUNDS = {
    "fixed_window": 10**12,
    "sliding_window": 10**12,
    "token_bucket": 10**12,
    "sliding_log": 10**5,
}


def exactly(message: str) -> str:
    """A ``match`` pattern for this message and nothing else."""
    return f"^{re.escape(message)}$"


def test_every_algorithm_has_its_documented_bound() -> None:
    assert {name: algorithm.max_limit for name, algorithm in ALGORITHMS.items()} == BOUNDS
    assert algorithms.MAX_WINDOW_NS == MAX_WINDOW_NS


@pytest.mark.parametrize("algorithm", sorted(BOUNDS))
def test_a_rate_at_the_bound_is_counted(algorithm: str) -> None:
    most = BOUNDS[algorithm]
    limiter = RateLimiter(MemoryStore(clock=Clock(1_700_000_000.0)), algorithm=algorithm)
    decision = limiter.hit("k", f"{most} per 365 days", cost=most)
    assert (decision.allowed, decision.limit, decision.remaining) == (True, most, 0)
    assert not limiter.hit("k", Rate(most, MAX_WINDOW_NS)).allowed


@pytest.mark.parametrize("algorithm", sorted(BOUNDS))
def test_a_limit_past_the_bound_is_a_value_error_naming_the_limit(algorithm: str) -> None:
    most = BOUNDS[algorithm]
    limiter = RateLimiter(MemoryStore())
    expected = (
        f"rate {most + 1}/day: limit {most + 1:,} is above {most:,}, the most {algorithm} "
        "counts exactly (docs/algorithms.md, 'Bounds')"
    )
    with pytest.raises(ValueError, match=exactly(expected)):
        limiter.hit("k", f"{most + 1}/day", algorithm=algorithm)
    with pytest.raises(ValueError, match=r"limit .* is above"):
        limiter.hit("k", Rate(most + 1, DAY_NS), algorithm=algorithm)


@pytest.mark.parametrize("algorithm", sorted(BOUNDS))
def test_a_window_past_365_days_is_a_value_error_naming_the_window(algorithm: str) -> None:
    limiter = RateLimiter(MemoryStore())
    expected = (
        "rate 10/366d: window of 366 days is longer than 365 days, the longest any "
        "algorithm counts (docs/algorithms.md, 'Bounds')"
    )
    with pytest.raises(ValueError, match=exactly(expected)):
        limiter.hit("k", "10 per 366 days", algorithm=algorithm)
    with pytest.raises(ValueError, match="window of 99,999,999,999,999,999,999 days is longer"):
        limiter.hit("k", "10 per 99999999999999999999 days", algorithm=algorithm)
    with pytest.raises(ValueError, match="window of 31,536,000,000,000,001 ns is longer"):
        limiter.hit("k", Rate(10, MAX_WINDOW_NS + 1), algorithm=algorithm)


def test_a_burst_past_the_bound_or_refilling_in_more_than_365_days_is_refused() -> None:
    limiter = RateLimiter(MemoryStore(), algorithm="token_bucket")
    expected = (
        "rate 1000000000000/day (burst 1000000000001): burst 1,000,000,000,001 is above "
        "1,000,000,000,000, the most token_bucket counts exactly (docs/algorithms.md, 'Bounds')"
    )
    with pytest.raises(ValueError, match=exactly(expected)):
        limiter.hit("k", Rate(10**12, DAY_NS, 10**12 + 1))
    expected = (
        "rate 1/day (burst 366): burst 366 takes 366 days to refill; a token bucket must "
        "refill within 365 days (docs/algorithms.md, 'Bounds')"
    )
    with pytest.raises(ValueError, match=exactly(expected)):
        limiter.hit("k", Rate(1, DAY_NS, 366))
    assert limiter.hit("k", Rate(1, DAY_NS, 365), cost=365).remaining == 0


def test_every_limit_spec_is_checked_whoever_builds_it() -> None:
    with pytest.raises(ValueError, match="limit 100,001 is above 100,000"):
        LimitSpec(ALGORITHMS["sliding_log"], 100_001, DAY_NS, 100_001)
    with pytest.raises(ValueError, match="longer than 365 days"):
        limit("10 per 400 days")  # a route limit fails when it is declared


@pytest.mark.parametrize("algorithm", sorted(BOUNDS))
def test_a_cost_past_the_bound_is_refused_and_counts_nothing(algorithm: str) -> None:
    most = BOUNDS[algorithm]
    limiter = RateLimiter(MemoryStore(clock=Clock(1_700_000_000.0)), algorithm=algorithm)
    assert limiter.hit("k", "10/minute").remaining == 9  # the plan is known: the fast path
    expected = (
        f"cost {most + 1:,} is above {most:,}, the most {algorithm} counts exactly "
        "(docs/algorithms.md, 'Bounds')"
    )
    with pytest.raises(ValueError, match=exactly(expected)):
        limiter.hit("k", "10/minute", cost=most + 1)
    with pytest.raises(ValueError, match=r"cost .* is above"):
        limiter.peek("k", "10/minute;100/hour", cost=most + 1)
    assert limiter.peek("k", "10/minute").remaining == 9
    # within the bound but above the limit: refused, told to wait a window (not an error)
    refused = limiter.hit("k", "10/minute", cost=most)
    assert (refused.allowed, refused.remaining, refused.retry_after) == (False, 9, 60.0)


async def test_the_asyncio_face_refuses_the_same() -> None:
    limiter = AsyncRateLimiter(MemoryStore())
    with pytest.raises(ValueError, match=r"limit .* is above"):
        await limiter.hit("k", "1000000000001/day")
    assert (await limiter.hit("k", "10/minute")).remaining == 9
    with pytest.raises(ValueError, match="cost 1,000,000,000,001 is above"):
        await limiter.hit("k", "10/minute", cost=10**12 + 1)


# the policy loader: PolicyError with file, line and field

POLICY = """\
version: 1
name: shop
defaults: {algorithm: sliding_log}
limits:
  api: {by: api_key, rate: 10/minute}
  bulk: {by: api_key, algorithm: token_bucket, rate: 100/day, burst: 200}
  short: 5/second
keys:
  - {key: k1, id: k1, plan: free}
plans:
  free:
    limits: {api: 10/minute}
categories:
  - name: api
    match: /api/**
    charge: {api: 1, bulk: 2}
"""


def _error(old: str, new: str) -> PolicyError:
    text = POLICY.replace(old, new)
    assert text != POLICY
    with pytest.raises(PolicyError) as caught:
        policy_from_text(textwrap.dedent(text))
    return caught.value


def test_the_policy_at_the_bounds_loads() -> None:
    policy_from_text(
        POLICY.replace("rate: 10/minute}", "rate: 100000 per 365 days}")
        .replace("100/day, burst: 200", "1000000000000 per 365 days, burst: 1000000000000")
        .replace("{api: 1, bulk: 2}", "{api: 100000, bulk: 1000000000000}")
    )


#: (text replaced, its replacement, line, field, how the message starts)
LOADER_CASES = [
    (
        "rate: 10/minute}", "rate: 100001/minute}", 5, "limits.api.rate",
        "rate 100001/minute: limit 100,001 is above 100,000, the most sliding_log counts",
    ),
    (
        "rate: 100/day,", "rate: 100 per 99999999999999999999 days,", 6, "limits.bulk.rate",
        "rate 100/99999999999999999999d (burst 200): window of 99,999,999,999,999,999,999 "
        "days is longer than 365 days",
    ),
    (
        "short: 5/second", "short: 100001/second", 7, "limits.short",
        "rate 100001/second: limit 100,001 is above 100,000, the most sliding_log counts",
    ),
    (
        "burst: 200", "burst: 1000000000001", 6, "limits.bulk.burst",
        "burst 1,000,000,000,001 is above 1,000,000,000,000, the most token_bucket counts",
    ),
    (
        "burst: 200", "burst: 36501", 6, "limits.bulk.rate",
        "rate 100/day (burst 36501): burst 36,501 takes 365.01 days to refill; a token "
        "bucket must refill within 365 days",
    ),
    (
        "limits: {api: 10/minute}", "limits: {api: 10 per 366 days}", 12,
        "plans.free.limits.api",
        "rate 10/366d: window of 366 days is longer than 365 days",
    ),
    (
        "id: k1, plan: free}", "id: k1, plan: free, limits: {bulk: 99999999999999999999/day}}",
        9, "keys[0].limits.bulk",
        "rate 99999999999999999999/day (burst 200): limit 99,999,999,999,999,999,999 is "
        "above 1,000,000,000,000, the most token_bucket counts",
    ),
    (
        "{api: 1, bulk: 2}", "{api: 100001, bulk: 2}", 16, "categories[0].charge.api",
        "cost 100,001 is above 100,000, the most sliding_log counts exactly",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    LOADER_CASES,
    ids=[case[3] for case in LOADER_CASES],
)
def test_the_loader_names_file_line_and_field_of_a_rate_past_its_bound(
    old: str, new: str, line: int, field: str, message: str
) -> None:
    error = _error(old, new)
    assert (error.line, error.field) == (line, field)
    assert error.message.startswith(message)
    assert error.message.endswith("(docs/algorithms.md, 'Bounds')")


def test_a_check_cost_past_the_bound_is_refused_before_anything_is_counted() -> None:
    policy = policy_from_text(POLICY)
    limiter = Limiter(policy, store=MemoryStore(clock=Clock(1_700_000_000.0)))
    headers = {"X-API-Key": "k1"}
    expected = (
        "shop:api: cost 100,001 is above 100,000, the most sliding_log counts exactly "
        "(docs/algorithms.md, 'Bounds')"
    )
    with pytest.raises(ValueError, match=exactly(expected)):
        limiter.check(path="/api/x", headers=headers, cost=100_001)
    decision: Any = limiter.check(path="/api/x", headers=headers)
    assert [(status.name, status.remaining) for status in decision.statuses] == [
        ("api", 9),
        ("bulk", 198),
    ]

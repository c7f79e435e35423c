"""Run vectors.yaml against every store of the matrix (see conftest.py).

Rate vectors run through both faces, ``RateLimiter`` and ``AsyncRateLimiter``,
since a store implements ``apply`` and ``apply_async`` separately.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from ratekeeper import AsyncRateLimiter, Decision, LockoutRule, RateLimiter
from ratekeeper.rates import Rate
from ratekeeper.stores import Block, Store

VECTORS = yaml.safe_load((Path(__file__).parent / "vectors.yaml").read_text(encoding="utf-8"))
NS_PER_MS = 1_000_000

RATE_STEP_FIELDS = {"at", "op", "key", "rates", "algorithm", "cost", "repeat", "expect", "statuses"}
LEASE_STEP_FIELDS = {"at", "op", "key", "limit", "ttl_ms", "name", "expect"}
LOCKOUT_STEP_FIELDS = {"at", "op", "key", "expect"}


def cases(group: str) -> list[Any]:
    params = []
    for vector in VECTORS[group]:
        marks = []
        if "xfail" in vector:
            marks.append(pytest.mark.xfail(reason=vector["xfail"], strict=True))
        params.append(pytest.param(vector, id=vector["name"], marks=marks))
    return params


def test_vector_names_are_unique() -> None:
    names = [vector["name"] for group in VECTORS.values() for vector in group]
    assert len(names) == len(set(names))


def at_ms(value: Any) -> int | Fraction:
    """A step's ``at``: whole ms, or ms with up to three decimals (whole µs), exactly."""
    if isinstance(value, int):
        return value
    exact = Fraction(str(value))
    assert (exact * 1000).denominator == 1, f"at {value!r} is not a whole number of µs"
    return exact


def whole_ms(seconds: float, since_ms: int = 0) -> int | float:
    """``seconds`` (an epoch instant or a duration) as ms after ``since_ms``.

    An int when it is a whole number of ms, a float of three decimals when it
    is a whole number of µs (the sliding log's vectors), else the float, so
    that a comparison shows the stray fraction. A duration is held by its float
    to well under a nanosecond, so any stray nanosecond shows; an epoch instant
    only to ~0.24 µs (the float's resolution at 1.7e9 s: up to 0.12 µs off, as
    t0 + 324 ms is), so 0.15 µs is allowed there.
    """
    us = (seconds - since_ms / 1000) * 1_000_000
    tolerance = 0.15 if since_ms else 1e-4  # in µs
    if abs(us - round(us, -3)) < tolerance:
        return round(us / 1000)
    if abs(us - round(us)) < tolerance:
        return round(us) / 1000
    return us / 1000


def decision_row(values: Any, t0_ms: int) -> list[Any]:
    return [
        values.allowed,
        values.limit,
        values.remaining,
        whole_ms(values.reset_at, t0_ms),
        whole_ms(values.retry_after),
    ]


def as_rates(spec: Any) -> str | tuple[Rate, ...]:
    if isinstance(spec, str):
        return spec
    return tuple(
        Rate(item["limit"], item["window_ms"] * NS_PER_MS, item.get("burst")) for item in spec
    )


async def call(method: Callable[..., Any], *args: Any) -> Decision:
    result = method(*args)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("face", [RateLimiter, AsyncRateLimiter], ids=["sync", "async"])
@pytest.mark.parametrize("vector", cases("rate_vectors"))
async def test_rate_vector(
    vector: dict[str, Any],
    face: type[RateLimiter | AsyncRateLimiter],
    store_factory: Callable[[Any], Store],
    clock: Any,
) -> None:
    t0 = clock.now_ms
    limiter = face(store_factory(clock))
    for index, step in enumerate(vector["steps"]):
        assert set(step) <= RATE_STEP_FIELDS, (
            f"step {index}: unknown {set(step) - RATE_STEP_FIELDS}"
        )
        assert t0 + at_ms(step["at"]) >= clock.now_ms, f"step {index} goes back in time"
        clock.now_ms = t0 + at_ms(step["at"])
        repeat = step.get("repeat", 1)
        expected = step["expect"] if repeat > 1 else [step["expect"]]
        assert len(expected) == repeat, f"step {index}: {repeat} repetitions, {len(expected)} rows"
        method = getattr(limiter, step.get("op", "hit"))
        key = step.get("key", vector.get("key", "k"))
        rates = as_rates(step.get("rates", vector.get("rates")))
        algorithm = step.get("algorithm", vector.get("algorithm"))
        for repetition, row in enumerate(expected):
            decision = await call(method, key, rates, step.get("cost", 1), algorithm)
            where = f"step {index} (at {step['at']} ms), repetition {repetition}"
            assert decision_row(decision, t0) == row, where
            if "statuses" in step:
                statuses = [decision_row(status, t0) for status in decision.statuses]
                assert statuses == step["statuses"], f"{where}: statuses"


@pytest.mark.parametrize("vector", cases("lease_vectors"))
def test_lease_vector(
    vector: dict[str, Any], store_factory: Callable[[Any], Store], clock: Any
) -> None:
    t0 = clock.now_ms
    leases = store_factory(clock).leases  # type: ignore[attr-defined]
    lease_ids: dict[str, str | None] = {}
    for index, step in enumerate(vector["steps"]):
        assert set(step) <= LEASE_STEP_FIELDS, (
            f"step {index}: unknown {set(step) - LEASE_STEP_FIELDS}"
        )
        clock.now_ms = t0 + step["at"]
        where = f"step {index} (at {step['at']} ms, {step['op']})"
        if step["op"] == "acquire":
            grant = leases.acquire(step["key"], step["limit"], step["ttl_ms"] / 1000)
            assert [grant.acquired, grant.in_use] == step["expect"], where
            assert grant.limit == step["limit"], where
            if "name" in step:
                lease_ids[step["name"]] = grant.lease_id
        elif step["op"] == "release":
            assert leases.release(step["key"], lease_ids[step["name"]]) is step["expect"], where
        elif step["op"] == "in_use":
            assert leases.in_use(step["key"]) == step["expect"], where
        else:
            pytest.fail(f"{where}: unknown op")


def block_row(block: Block, t0_ms: int) -> list[Any]:
    until: int | float | None = None
    if block.blocked:
        offset = block.until_ns - t0_ms * NS_PER_MS
        until = offset // NS_PER_MS if offset % NS_PER_MS == 0 else offset / NS_PER_MS
    return [until, block.failures, block.streak]


@pytest.mark.parametrize("vector", cases("lockout_vectors"))
def test_lockout_vector(
    vector: dict[str, Any], store_factory: Callable[[Any], Store], clock: Any
) -> None:
    t0 = clock.now_ms
    lockouts = store_factory(clock).lockouts  # type: ignore[attr-defined]
    rule_spec = vector["rule"]
    max_block_ms = rule_spec.get("max_block_ms")
    rule = LockoutRule(
        threshold=rule_spec["threshold"],
        window=rule_spec["window_ms"] / 1000,
        block=rule_spec["block_ms"] / 1000,
        escalation=rule_spec.get("escalation", 1.0),
        max_block=None if max_block_ms is None else max_block_ms / 1000,
        streak_memory=rule_spec.get("streak_memory_ms", 86_400_000) / 1000,
    )
    for index, step in enumerate(vector["steps"]):
        assert set(step) <= LOCKOUT_STEP_FIELDS, (
            f"step {index}: unknown {set(step) - LOCKOUT_STEP_FIELDS}"
        )
        clock.now_ms = t0 + step["at"]
        where = f"step {index} (at {step['at']} ms, {step['op']})"
        if step["op"] == "fail":
            block = lockouts.record_failure(step["key"], rule)
            assert block.key == step["key"], where
            assert block_row(block, t0) == step["expect"], where
        elif step["op"] == "status":
            assert block_row(lockouts.status(step["key"]), t0) == step["expect"], where
        elif step["op"] == "unblock":
            assert lockouts.unblock(step["key"]) is step["expect"], where
        else:
            pytest.fail(f"{where}: unknown op")

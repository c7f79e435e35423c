"""A decision of several descriptors written as Envoy's ``RateLimitResponse``.

What Envoy reads: ``overall_code`` (OK or OVER_LIMIT), one ``DescriptorStatus``
per descriptor, in order (its code, the tightest of its limits as
``current_limit``, ``limit_remaining`` and ``duration_until_reset``),
``response_headers_to_add`` (the policy's header fields, the ``X-RateLimit-*``
or IETF ones, and ``Retry-After`` on OVER_LIMIT, which Envoy does not add
itself) and ``raw_body`` (the policy's body of a refusal).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import duration_pb2

from ...engine import PolicyDecision
from ...rates import NS_PER_SECOND, Rate
from ...stores.base import Charge, ChargeResult
from ._mapping import UNLIMITED, Fixed, Reading

__all__ = ["SECONDS_OF_UNIT", "response_of", "rule_stats", "unit_of"]

_Response = rls_pb2.RateLimitResponse
_Status = _Response.DescriptorStatus
_OK = _Response.OK
_OVER = _Response.OVER_LIMIT
_MAX_UINT32 = 2**32 - 1
_NEAR = 0.8  # the reference's NEAR_LIMIT_RATIO default
_UNITS = {
    1: _Response.RateLimit.SECOND, 60: _Response.RateLimit.MINUTE,
    3600: _Response.RateLimit.HOUR, 86400: _Response.RateLimit.DAY,
    604800: _Response.RateLimit.WEEK, 2592000: _Response.RateLimit.MONTH,
    31536000: _Response.RateLimit.YEAR,
}  # fmt: skip


#: Envoy's unit -> its seconds (what a descriptor's ``limit`` override names)
SECONDS_OF_UNIT = {unit: seconds for seconds, unit in _UNITS.items()}


def unit_of(window_ns: int) -> Any:
    """Envoy's unit of a window; UNKNOWN when none fits (the limit's ``name`` says it)."""
    seconds, rest = divmod(window_ns, NS_PER_SECOND)
    unit = None if rest else _UNITS.get(seconds)
    return _Response.RateLimit.UNKNOWN if unit is None else unit


def response_of(decision: PolicyDecision | None, reading: Reading) -> Any:
    """The response to a request read as ``reading`` whose items were decided as ``decision``
    (``None``: nothing to decide).

    A request a descriptor refuses outright (``requests_per_unit: 0``) gets no
    header fields and no body: there is no count to report, and no
    ``Retry-After`` a client could usefully wait for.
    """
    places = reading.places
    now_ns = decision.decided_at_ns if decision is not None else time.time_ns()
    statuses = [
        _status(decision, place) if isinstance(place, int) else _fixed(place, now_ns)
        for place in places
    ]
    if decision is None or reading.refused:
        return _Response(overall_code=_OVER if reading.refused else _OK, statuses=statuses)
    allowed = decision.allowed
    response = _Response(overall_code=_OK if allowed else _OVER, statuses=statuses)
    fields = decision.headers
    if not allowed and "Retry-After" not in fields and decision.retry_after > 0:
        fields = {**fields, "Retry-After": str(math.ceil(decision.retry_after))}
    response.response_headers_to_add.extend(
        base_pb2.HeaderValue(key=name, value=value) for name, value in fields.items()
    )
    if not allowed:
        body = decision.body
        if body:
            response.raw_body = body
    return response


def _fixed(place: Fixed | None, now_ns: int) -> Any:
    """A descriptor's status without the store: not limited, unlimited, or a limit of 0."""
    if place is None:
        return _Status(code=_OK)
    if place.window_s is None:  # unlimited: the reference reports the largest uint32 left
        return _Status(code=_OK, limit_remaining=_MAX_UINT32)
    window_ns = place.window_s * NS_PER_SECOND
    left = window_ns - now_ns % window_ns  # to the end of the clock-aligned window
    return _Status(
        code=_OVER if place.refuses else _OK,
        current_limit=_Response.RateLimit(requests_per_unit=0, unit=unit_of(window_ns)),
        limit_remaining=0,
        duration_until_reset=duration_pb2.Duration(
            seconds=left // NS_PER_SECOND, nanos=left % NS_PER_SECOND
        ),
    )


def _status(decision: PolicyDecision | None, place: int) -> Any:
    """One descriptor's status: the tightest of the limits its item was charged."""
    assert decision is not None  # an item's place: its request was decided
    ends, results = decision.item_ends, decision.results
    if not results or not ends:  # refused before any rate (a block, a cap, a 401), or exempt
        return _Status(code=_OK if decision.allowed else _OVER)
    start = ends[place - 1] if place else 0
    charges, mine = decision.charges[start : ends[place]], results[start : ends[place]]
    if not charges:  # exempt, or every limit unlimited
        return _Status(code=_OK)
    index = _tightest(charges, mine)
    spec = charges[index][0]
    allowed, remaining, reset_ns, _ = mine[index]
    left = max(0, reset_ns - decision.decided_at_ns)
    # a shadow limit over its count says OK with nothing left, as the reference's does
    return _Status(
        code=_OK if allowed or charges[index][3] else _OVER,
        current_limit=_Response.RateLimit(
            requests_per_unit=spec.limit,
            unit=unit_of(spec.window_ns),
            name=str(Rate(spec.limit, spec.window_ns)),
        ),
        limit_remaining=max(0, remaining),
        duration_until_reset=duration_pb2.Duration(
            seconds=left // NS_PER_SECOND, nanos=left % NS_PER_SECOND
        ),
    )


def _tightest(charges: Sequence[Charge], results: Sequence[ChargeResult]) -> int:
    """The limit a descriptor reports: of those refusing, the longest wait (an enforced one
    before a shadow one, so a refused descriptor never says OK); else the least remaining
    (ties: the later reset), shadow limits counted as enforced ones."""
    best = -1
    for watching in (False, True):
        for index, result in enumerate(results):
            if (
                not result[0]
                and charges[index][3] is watching
                and (best < 0 or result[3] > results[best][3])
            ):
                best = index
        if best >= 0:
            return best
    for index, result in enumerate(results):
        if (
            best < 0
            or result[1] < results[best][1]
            or (result[1] == results[best][1] and result[2] > results[best][2])
        ):
            best = index
    return best


def rule_stats(
    decision: PolicyDecision | None, reading: Reading, hits: Sequence[int]
) -> Iterator[tuple[str, str, int]]:
    """``(rule, stat, hits)`` of each limited descriptor, as the reference counts its stats.

    ``hits[i]``: descriptor ``i``'s hits. Every hit is a ``total_hits``; then
    ``over_limit`` (and also ``shadow_mode`` when its limit only watches: the
    reference's additional statistic), or ``within_limit``, and also
    ``near_limit`` past 80% of the limit (the reference's default ratio).
    Unlimited and unmatched descriptors and peeks count nothing.
    """
    for index, rule in enumerate(reading.rules):
        place, count = reading.places[index], hits[index]
        if rule is None or place is None or place is UNLIMITED or count == 0:
            continue
        yield rule, "total_hits", count
        if isinstance(place, Fixed):
            yield rule, "over_limit", count
            if not place.refuses:
                yield rule, "shadow_mode", count
            continue
        assert decision is not None  # an item's place: its request was decided
        ends, results, charges = decision.item_ends, decision.results, decision.charges
        if not results or not ends:  # refused before any rate: a block, a cap, a 401
            yield rule, "within_limit" if decision.allowed else "over_limit", count
            continue
        start = ends[place - 1] if place else 0
        over = [i for i in range(start, ends[place]) if not results[i][0]]
        if over:
            yield rule, "over_limit", count
            if all(charges[i][3] for i in over):
                yield rule, "shadow_mode", count
        else:
            yield rule, "within_limit", count
            if any(
                charges[i][0].limit - results[i][1] > charges[i][0].limit * _NEAR
                for i in range(start, ends[place])
            ):
                yield rule, "near_limit", count

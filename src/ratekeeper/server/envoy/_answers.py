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
from collections.abc import Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import duration_pb2

from ...engine import PolicyDecision
from ...rates import NS_PER_SECOND, Rate
from ...stores.base import Charge, ChargeResult

__all__ = ["response_of", "unit_of"]

_Response = rls_pb2.RateLimitResponse
_Status = _Response.DescriptorStatus
_OK = _Response.OK
_OVER = _Response.OVER_LIMIT
_UNITS = {
    1: _Response.RateLimit.SECOND, 60: _Response.RateLimit.MINUTE,
    3600: _Response.RateLimit.HOUR, 86400: _Response.RateLimit.DAY,
    604800: _Response.RateLimit.WEEK, 2592000: _Response.RateLimit.MONTH,
    31536000: _Response.RateLimit.YEAR,
}  # fmt: skip


def unit_of(window_ns: int) -> Any:
    """Envoy's unit of a window; UNKNOWN when none fits (the limit's ``name`` says it)."""
    seconds, rest = divmod(window_ns, NS_PER_SECOND)
    unit = None if rest else _UNITS.get(seconds)
    return _Response.RateLimit.UNKNOWN if unit is None else unit


def response_of(decision: PolicyDecision | None, places: Sequence[int | None]) -> Any:
    """The response to a request whose descriptors became the items of ``decision``.

    ``places[i]``: which item descriptor ``i`` became, ``None`` when it is not
    limited (answered OK, no limit). ``decision`` ``None``: nothing was limited.
    """
    if decision is None:
        return _Response(overall_code=_OK, statuses=[_Status(code=_OK) for _ in places])
    allowed = decision.allowed
    response = _Response(
        overall_code=_OK if allowed else _OVER,
        statuses=[_status(decision, place) for place in places],
    )
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


def _status(decision: PolicyDecision, place: int | None) -> Any:
    """One descriptor's status: the tightest of the limits its item was charged."""
    if place is None:
        return _Status(code=_OK)
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
    # a shadow limit over its count reports OVER_LIMIT on its descriptor, never denies
    return _Status(
        code=_OK if allowed else _OVER,
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
    """The limit a descriptor reports: of those refusing, the longest wait; else the least
    remaining (ties: the later reset). Shadow limits are counted as enforced ones here."""
    best = -1
    if any(not result[0] for result in results):
        for index, result in enumerate(results):
            if not result[0] and (best < 0 or result[3] > results[best][3]):
                best = index
        return best
    for index, result in enumerate(results):
        if (
            best < 0
            or result[1] < results[best][1]
            or (result[1] == results[best][1] and result[2] > results[best][2])
        ):
            best = index
    return best

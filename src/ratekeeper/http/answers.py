"""Answers: what a decision puts on the wire, written in one place.

A decision (:class:`~ratekeeper.engine.PolicyDecision`, plain data) and its
policy's answer settings (header style, report window, ``Retry-After``, body
templates) give everything a face sends back:

- the header fields, written once as the byte pairs ASGI sends
  (:meth:`PolicyAnswers.raw_headers`); the dict of ``decision.headers`` (and
  WSGI) is those bytes read back with HTTP's spelling;
- the body of a refusal (429, 401, 400, 503) and its content type;
- the app's own response headers merged with ours: a field the app set itself
  stays the app's.

The ASGI and WSGI middleware, route limits (:func:`decision_headers`) and the
lanes (:meth:`PolicyAnswers.one_rate_writer`) all write through here. The
engine imports none of it: a limiter is given the :class:`PolicyAnswers` of its
compiled policy (``ratekeeper.Limiter`` does that) and each decision carries
it (docs/architecture.md).

``X-RateLimit-Reset`` is an integer Unix time in seconds: on an allowed
response, when the reported limit has its whole quota back; on a 429, when the
request could pass. ``Retry-After`` (429 only) is whole seconds, rounded up,
never 0, so a client that waits it out succeeds.

The IETF fields follow draft-ietf-httpapi-ratelimit-headers-10: one list item
per applied limit, named by the policy, ``t`` counted from when the decision
was made (``decision.decided_at_ns``), whenever the fields are written::

    RateLimit-Policy: "api";q=60;w=60, "api-hour";q=1000;w=3600
    RateLimit: "api";r=59;t=60, "api-hour";r=999;t=3600
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any

from ..engine import (
    ADMITTED,
    BLOCKED,
    LIMITED,
    OVER_CAP,
    UNAVAILABLE,
    Decision,
    PolicyDecision,
    RateStatus,
)
from ..policy.compiler import CompiledPolicy
from ..rates import NS_PER_SECOND
from ..stores.base import ChargeResult

__all__ = [
    "OURS",
    "PolicyAnswers",
    "RawHeaders",
    "decision_headers",
    "merge",
    "merge_raw",
    "retry_after_seconds",
    "status_line",
]

RawHeaders = list[tuple[bytes, bytes]]
Field = tuple[bytes, bytes]

#: the header fields the limiter writes: their names as ASGI sends them, and as HTTP spells them
SPELLING: dict[bytes, str] = {
    b"x-ratelimit-limit": "X-RateLimit-Limit",
    b"x-ratelimit-remaining": "X-RateLimit-Remaining",
    b"x-ratelimit-reset": "X-RateLimit-Reset",
    b"ratelimit-policy": "RateLimit-Policy",
    b"ratelimit": "RateLimit",
    b"retry-after": "Retry-After",
}
#: the header fields the limiter writes, as ASGI names them
OURS = frozenset(SPELLING)
_OURS_TEXT = frozenset(name.decode("latin-1") for name in SPELLING)
_RETRY_IN_ONE = (b"retry-after", b"1")


def retry_after_seconds(retry_after: float) -> int:
    """``Retry-After`` as a whole number of seconds: rounded up, at least 1."""
    return max(1, math.ceil(retry_after))


def _limit_field(limit: int) -> Field:
    return (b"x-ratelimit-limit", b"%d" % limit)


def _reset_field(reset_at: float) -> Field:
    return (b"x-ratelimit-reset", b"%d" % math.ceil(reset_at))


def _trio(limit_field: Field, remaining: int, reset_field: Field) -> RawHeaders:
    """The ``X-RateLimit-*`` trio: every answer that has one writes it here."""
    return [limit_field, (b"x-ratelimit-remaining", b"%d" % remaining), reset_field]


def _retry_field(retry_after: float) -> Field:
    return (b"retry-after", b"%d" % retry_after_seconds(retry_after))


def _spelled(raw: RawHeaders) -> dict[str, str]:
    """Raw fields as a dict with HTTP's spelling of the names (``X-RateLimit-Limit``)."""
    return {SPELLING[name]: value.decode("latin-1") for name, value in raw}


def _no_fields(result: ChargeResult) -> RawHeaders:
    return []


def decision_headers(decision: Decision) -> dict[str, str]:
    """The trio of a :class:`~ratekeeper.engine.Decision`, and ``Retry-After`` when refused.

    What a route limit (``ratekeeper.limit``) answers with: its decision
    comes from a ``RateLimiter``, with no policy to ask for other fields.
    """
    raw = _trio(_limit_field(decision.limit), decision.remaining, _reset_field(decision.reset_at))
    if not decision.allowed:
        raw.append(_retry_field(decision.retry_after))
    return _spelled(raw)


def status_line(code: int) -> str:
    """``"429 Too Many Requests"``: a WSGI status line."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


class PolicyAnswers:
    """The answers of one compiled policy: the renderer its decisions carry.

    Plain settings (which fields, which window they report, ``Retry-After``
    or not, the body templates) and functions of a decision: it reads no
    clock and holds no limiter. Implements :class:`ratekeeper.engine.Answers`.
    """

    __slots__ = ("_bodies", "_docs_url", "_ietf", "_limit_fields", "_report_window",
                 "_report_window_ns", "_retry_after", "_x")  # fmt: skip

    def __init__(self, compiled: CompiledPolicy) -> None:
        settings = compiled.policy.headers
        self._x = settings.style in ("x-ratelimit", "both")
        self._ietf = settings.style in ("ietf", "both")
        self._report_window = window = settings.report_window
        self._report_window_ns = round(window * NS_PER_SECOND) if window is not None else None
        self._retry_after = settings.retry_after
        self._bodies = compiled.bodies
        self._docs_url = compiled.policy.docs_url
        # limit -> its X-RateLimit-Limit field: one per limit, cap or threshold of the policy
        self._limit_fields: dict[int, Field] = {}

    # header fields

    def headers(self, decision: PolicyDecision) -> dict[str, str]:
        """The response header fields of ``decision`` (none for exempt requests)."""
        return _spelled(self.raw_headers(decision))

    def raw_headers(self, decision: PolicyDecision) -> RawHeaders:
        """The header fields of ``decision`` as lower-case latin-1 byte pairs (a new list).

        Over a rate: the ``X-RateLimit-*`` trio of the reported limit, the IETF
        fields and ``Retry-After``, per the policy. Blocked: the trio
        describes the block (the threshold it went over, nothing remaining,
        the block's end) and ``Retry-After`` is always sent. Over a
        concurrency cap: the trio of the cap (or of the report window's
        limit), retry in 1 s. The store down: ``Retry-After: 1``. Exempt, 401
        and 400: nothing.
        """
        outcome = decision.outcome
        if outcome in (ADMITTED, LIMITED):
            charges = decision.charges
            if not charges or decision.limit == 0:  # no enforced rate: shadow limits only
                return []
            if decision.allowed and not self._ietf and len(charges) == 1 and not charges[0][3]:
                # one enforced rate: the reported numbers are its own, whatever the window
                if not self._x:
                    return []
                limit = decision.limit
                return _trio(
                    self._limit_fields.get(limit) or self._limit(limit),
                    decision.remaining,
                    (b"x-ratelimit-reset", b"%d" % math.ceil(decision.reset_at)),
                )
            return self._rate_fields(decision)
        if outcome == BLOCKED:
            fields = self._blocked_trio(decision.limit, decision.reset_at)
            fields.append(_retry_field(decision.retry_after))
            return fields
        if outcome == OVER_CAP:
            fields = self._blocked_trio(self._cap_reported(decision), decision.reset_at)
            if self._retry_after:
                fields.append(_RETRY_IN_ONE)
            return fields
        if outcome == UNAVAILABLE:
            return [_RETRY_IN_ONE]
        return []

    def one_rate_writer(self, limit: int) -> Callable[[ChargeResult], RawHeaders] | None:
        """Writes an admitted answer on one enforced rate of ``limit`` from the store's result.

        The lanes' answer (:mod:`ratekeeper.engine._lanes`): the fields
        :meth:`raw_headers` writes for such a decision, without the decision.
        Requests of one window share their reset: its field is written once.
        ``None`` when the policy writes the IETF fields (they need the
        decision's statuses).
        """
        if self._ietf:
            return None
        if not self._x:
            return _no_fields
        limit_field = self._limit(limit)
        last = (-1, _reset_field(0))

        def write(result: ChargeResult) -> RawHeaders:
            nonlocal last
            reset = result[2]
            kept = last
            if kept[0] != reset:
                kept = last = (reset, _reset_field(reset / NS_PER_SECOND))
            return _trio(limit_field, result[1], kept[1])

        return write

    def _limit(self, limit: int) -> Field:
        field = self._limit_fields.get(limit)
        if field is None:
            field = self._limit_fields[limit] = _limit_field(limit)
        return field

    def _blocked_trio(self, limit: int, until: float) -> RawHeaders:
        if not self._x:
            return []
        return _trio(self._limit(limit), 0, _reset_field(until))

    def _rate_fields(self, decision: PolicyDecision) -> RawHeaders:
        fields: RawHeaders = []
        if self._x:
            limit, remaining, reset_at = self._reported(decision)
            fields = _trio(self._limit(limit), remaining, _reset_field(reset_at))
        if self._ietf:
            statuses = [status for status in decision.statuses if not status.shadow]
            if statuses:
                now = decision.decided_at_ns / NS_PER_SECOND
                fields.append((b"ratelimit-policy", _policy_field(statuses).encode("latin-1")))
                fields.append((b"ratelimit", _state_field(statuses, now).encode("latin-1")))
        if not decision.allowed and self._retry_after:
            fields.append(_retry_field(decision.retry_after))
        return fields

    def _reported(self, decision: PolicyDecision) -> tuple[int, int, float]:
        """The limit the trio describes: the report window's, else the tightest."""
        window = self._report_window
        if window is not None:
            for status in decision.statuses:
                if status.window == window and not status.shadow:
                    if decision.allowed:
                        return status.limit, status.remaining, status.reset_at
                    return status.limit, 0, decision.reset_at
        return decision.limit, decision.remaining, decision.reset_at

    def _cap_reported(self, decision: PolicyDecision) -> int:
        """Over a cap, the trio describes the cap, or the report window's limit."""
        window_ns = self._report_window_ns
        if window_ns is not None:
            for spec, _, _, shadow in decision.charges:
                if spec.window_ns == window_ns and not shadow:
                    return spec.limit
        return decision.limit

    # the body

    def body(self, decision: PolicyDecision) -> bytes:
        """The body of a refusal: the policy's template for its response, filled in."""
        template = self._bodies[decision.response or "rate_limited"]
        window = 0
        for status in decision.statuses:
            if status.limit == decision.limit and not status.allowed:
                window = math.ceil(status.window)
                break
        values: dict[str, Any] = {
            "retry_after": retry_after_seconds(decision.retry_after) if not decision.allowed else 0,
            "limit": decision.limit,
            "remaining": decision.remaining,
            "reset": math.ceil(decision.reset_at),
            "window": window,
            "ip": decision.client_ip,
            "plan": decision.plan,
            "category": decision.category,
            "docs_url": self._docs_url,
            "method": decision.method,
            "path": decision.path,
            "key_id": decision.key_id,
            "detail": decision.detail,
            "status": decision.status_code,
        }
        return template.render(values)

    def content_type(self, decision: PolicyDecision) -> str | None:
        """The body's media type; ``None`` when allowed."""
        if decision.response is None:
            return None
        return self._bodies[decision.response].content_type

    # whole refusals, as each face sends them

    def refusal_raw(self, decision: PolicyDecision) -> tuple[int, RawHeaders, bytes]:
        """``(status, header fields, body)`` of a refusal, as ASGI sends them."""
        body = decision.body or b""
        headers = self.raw_headers(decision)
        headers.append((b"content-type", (decision.content_type or "application/json").encode()))
        headers.append((b"content-length", b"%d" % len(body)))
        return decision.status_code, headers, body

    def refusal(self, decision: PolicyDecision) -> tuple[str, list[tuple[str, str]], bytes]:
        """``(status line, header fields, body)`` of a refusal, as WSGI sends them."""
        body = decision.body or b""
        headers = list(decision.headers.items())
        headers.append(("Content-Type", decision.content_type or "application/json"))
        headers.append(("Content-Length", str(len(body))))
        return status_line(decision.status_code), headers, body


def merge_raw(app: Iterable[tuple[bytes, bytes]] | None, ours: RawHeaders) -> RawHeaders:
    """The app's response headers (ASGI) and ours; a field the app set itself is left to the app.

    Always a new list, or ``ours`` itself when the app sent none: the app's
    list may be a response object's own, sent again later.
    """
    if not app:
        return ours
    if app.__class__ is not list:  # any iterable, read once
        app = list(app)
    for name, _ in app:
        if name in OURS:
            own = {name for name, _ in app}
            return [*app, *(pair for pair in ours if pair[0] not in own)]
    return [*app, *ours]


def merge(app: list[tuple[str, str]], ours: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The app's response headers (WSGI) and ours; a field the app set itself is left to the app."""
    for name, _ in app:
        if name.lower() in _OURS_TEXT:
            own = {name.lower() for name, _ in app}
            return [*app, *(pair for pair in ours if pair[0].lower() not in own)]
    return [*app, *ours]


def _policy_field(statuses: Sequence[RateStatus]) -> str:
    return ", ".join(
        f'"{status.name}";q={status.limit};w={math.ceil(status.window)}' for status in statuses
    )


def _state_field(statuses: Sequence[RateStatus], now: float) -> str:
    return ", ".join(
        f'"{status.name}";r={status.remaining};t={max(0, math.ceil(status.reset_at - now))}'
        for status in statuses
    )

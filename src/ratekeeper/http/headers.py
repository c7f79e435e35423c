"""Rate limit header fields: the ``X-RateLimit-*`` trio and the IETF fields.

``X-RateLimit-Reset`` is an integer Unix time in seconds: on an allowed
response, when the reported limit has its whole quota back; on a 429, when the
request could pass. ``Retry-After`` (429 only) is whole seconds, rounded up,
never 0, so a client that waits it out succeeds.

The IETF fields follow draft-ietf-httpapi-ratelimit-headers-10: one list item
per applied limit, named by the policy::

    RateLimit-Policy: "api";q=60;w=60, "api-hour";q=1000;w=3600
    RateLimit: "api";r=59;t=60, "api-hour";r=999;t=3600
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..engine._decisions import Decision, RateStatus

__all__ = ["HeaderWriter", "retry_after_seconds"]


def retry_after_seconds(retry_after: float) -> int:
    """``Retry-After`` as a whole number of seconds: rounded up, at least 1."""
    return max(1, math.ceil(retry_after))


class HeaderWriter:
    """Writes the header fields one policy asks for."""

    __slots__ = ("_ietf", "_limits", "_report_window", "_retry_after", "_x")

    def __init__(self, style: str, report_window: float | None, retry_after: bool) -> None:
        self._x = style in ("x-ratelimit", "both")
        self._ietf = style in ("ietf", "both")
        self._report_window = report_window
        self._retry_after = retry_after
        # limit -> its X-RateLimit-Limit value: one per limit of the policy
        self._limits: dict[int, bytes] = {}

    @property
    def x_fields(self) -> bool:
        """Whether the ``X-RateLimit-*`` trio is written."""
        return self._x

    @property
    def ietf_fields(self) -> bool:
        """Whether the IETF ``RateLimit-Policy`` / ``RateLimit`` fields are written."""
        return self._ietf

    def write(self, decision: Decision, now: float) -> dict[str, str]:
        """The header fields for ``decision`` at epoch second ``now``."""
        headers: dict[str, str] = {}
        if self._x:
            limit, remaining, reset_at = self._reported(decision)
            headers["X-RateLimit-Limit"] = str(limit)
            headers["X-RateLimit-Remaining"] = str(remaining)
            headers["X-RateLimit-Reset"] = str(math.ceil(reset_at))
        if self._ietf:
            statuses = [status for status in decision.statuses if not status.shadow]
            if statuses:
                headers["RateLimit-Policy"] = _policy_field(statuses)
                headers["RateLimit"] = _state_field(statuses, now)
        if not decision.allowed and self._retry_after:
            headers["Retry-After"] = str(retry_after_seconds(decision.retry_after))
        return headers

    def write_raw(self, decision: Decision, now: float) -> list[tuple[bytes, bytes]]:
        """:meth:`write` as lower-case latin-1 byte pairs, the way ASGI sends headers.

        The middleware's hot path: numbers go straight to bytes, without the
        dictionary of strings in between.
        """
        headers: list[tuple[bytes, bytes]] = []
        if self._x:
            limit, remaining, reset_at = self._reported(decision)
            headers.append((b"x-ratelimit-limit", b"%d" % limit))
            headers.append((b"x-ratelimit-remaining", b"%d" % remaining))
            headers.append((b"x-ratelimit-reset", b"%d" % math.ceil(reset_at)))
        if self._ietf:
            statuses = [status for status in decision.statuses if not status.shadow]
            if statuses:
                headers.append((b"ratelimit-policy", _policy_field(statuses).encode("latin-1")))
                headers.append((b"ratelimit", _state_field(statuses, now).encode("latin-1")))
        if not decision.allowed and self._retry_after:
            headers.append((b"retry-after", b"%d" % retry_after_seconds(decision.retry_after)))
        return headers

    def write_one_raw(
        self, limit: int, remaining: int, reset_at: float
    ) -> list[tuple[bytes, bytes]] | None:
        """:meth:`write_raw` of an allowed decision on one enforced rate, from its numbers.

        The middleware's common case: with a single rate the reported numbers
        are that rate's whatever the report window, and the
        ``X-RateLimit-Limit`` value is encoded once per limit. ``None`` when
        the policy asks for the IETF fields, which are written from the
        decision's statuses.
        """
        if self._ietf:
            return None
        if not self._x:
            return []
        limit_bytes = self._limits.get(limit)
        if limit_bytes is None:
            limit_bytes = self._limits[limit] = b"%d" % limit
        return [
            (b"x-ratelimit-limit", limit_bytes),
            (b"x-ratelimit-remaining", b"%d" % remaining),
            (b"x-ratelimit-reset", b"%d" % math.ceil(reset_at)),
        ]

    def write_block(self, threshold: int, until: float, retry_after: float) -> dict[str, str]:
        """The header fields for a blocked client (lockout or penalty).

        The ``X-RateLimit-*`` trio describes the block: the threshold it went
        over, nothing remaining, and the block's end.
        """
        headers: dict[str, str] = {}
        if self._x:
            headers["X-RateLimit-Limit"] = str(threshold)
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(math.ceil(until))
        headers["Retry-After"] = str(retry_after_seconds(retry_after))
        return headers

    def _reported(self, decision: Decision) -> tuple[int, int, float]:
        window = self._report_window
        if window is not None:
            for status in decision.statuses:
                if status.window == window and not status.shadow:
                    if decision.allowed:
                        return status.limit, status.remaining, status.reset_at
                    return status.limit, 0, decision.reset_at
        return decision.limit, decision.remaining, decision.reset_at


def _policy_field(statuses: Sequence[RateStatus]) -> str:
    return ", ".join(
        f'"{status.name}";q={status.limit};w={math.ceil(status.window)}' for status in statuses
    )


def _state_field(statuses: Sequence[RateStatus], now: float) -> str:
    return ", ".join(
        f'"{status.name}";r={status.remaining};t={max(0, math.ceil(status.reset_at - now))}'
        for status in statuses
    )

"""What a rate limiting decision says, assembled once for sync and async faces.

A :class:`Decision` is built from the store's raw results. Its per-rate
:class:`RateStatus` objects are only made when someone reads ``statuses``
(headers for several policies, dashboards), so the common path of "allowed?
and the tightest rate's numbers" allocates one object. A
:class:`PolicyDecision` is the same about one HTTP request, with what its
answer is written from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..policy.compiler import CompiledLockout
from ..rates import NS_PER_SECOND as _NS
from ..stores.base import Charge, ChargeResult

if TYPE_CHECKING:
    from ._limiter import _LimiterCore

__all__ = ["Decision", "PolicyDecision", "RateStatus", "build_decision", "tightest"]


@dataclass(frozen=True, slots=True)
class RateStatus:
    """One rate's part of a decision.

    ``reset_at`` is when the rate has its whole quota back, or, for a rate that
    denied the request, when the request could pass (``now + retry_after``).
    """

    limit: int
    remaining: int
    reset_at: float
    retry_after: float
    window: float
    allowed: bool
    key: str
    name: str = ""
    shadow: bool = False


class Decision:
    """The answer to "may this pass?", with the numbers headers need.

    ``limit``, ``remaining`` and ``reset_at`` describe the tightest rate: the
    one that denied the request (the one needing the longest wait), else the
    one with the least remaining. ``retry_after`` is 0.0 when allowed.
    """

    __slots__ = (
        "_charges",
        "_names",
        "_results",
        "_statuses",
        "allowed",
        "limit",
        "remaining",
        "reset_at",
        "retry_after",
    )

    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    retry_after: float

    def __init__(
        self,
        allowed: bool,
        limit: int,
        remaining: int,
        reset_at: float,
        retry_after: float,
        charges: Sequence[Charge] = (),
        results: Sequence[ChargeResult] = (),
        names: Sequence[str] = (),
    ) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_at = reset_at
        self.retry_after = retry_after
        self._charges = charges
        self._results = results
        self._names = names
        self._statuses: tuple[RateStatus, ...] | None = None

    @property
    def statuses(self) -> tuple[RateStatus, ...]:
        """One status per rate checked, in the order they were charged."""
        if self._statuses is None:
            names = self._names
            self._statuses = tuple(
                RateStatus(
                    limit=spec.limit,
                    remaining=remaining,
                    reset_at=reset / _NS,
                    retry_after=retry / _NS,
                    window=spec.window_ns / _NS,
                    allowed=allowed,
                    key=key,
                    name=names[index] if index < len(names) else "",
                    shadow=shadow,
                )
                for index, ((spec, key, _cost, shadow), (allowed, remaining, reset, retry)) in (
                    enumerate(zip(self._charges, self._results, strict=True))
                )
            )
        return self._statuses

    def __bool__(self) -> bool:
        return self.allowed

    def __repr__(self) -> str:
        return (
            f"Decision(allowed={self.allowed}, limit={self.limit}, remaining={self.remaining}, "
            f"reset_at={self.reset_at:.3f}, retry_after={self.retry_after:.3f})"
        )


def tightest(
    admitted: bool,
    charges: Sequence[Charge],
    results: Sequence[ChargeResult],
    clock: Callable[[], int],
) -> tuple[int, int, float, float]:
    """``(limit, remaining, reset_at, retry_after)`` of the rate a decision reports.

    Admitted: the enforced rate with the least remaining (ties: the later
    reset). Refused: the enforced rate that needs the longest wait. With no
    enforced rate at all (everything unlimited or shadow): ``(0, 0, now, 0.0)``.
    """
    best = -1
    if admitted:
        best_remaining = best_reset = 0
        for index, result in enumerate(results):
            if charges[index][3]:
                continue
            remaining, reset = result[1], result[2]
            if (
                best < 0
                or remaining < best_remaining
                or (remaining == best_remaining and reset > best_reset)
            ):
                best, best_remaining, best_reset = index, remaining, reset
        if best < 0:
            return 0, 0, clock() / _NS, 0.0
        return charges[best][0].limit, best_remaining, best_reset / _NS, 0.0
    best_retry = -1
    for index, result in enumerate(results):
        if not result[0] and not charges[index][3] and result[3] > best_retry:
            best, best_retry = index, result[3]
    result = results[best]
    return charges[best][0].limit, result[1], result[2] / _NS, best_retry / _NS


def build_decision(
    admitted: bool,
    charges: Sequence[Charge],
    results: Sequence[ChargeResult],
    clock: Callable[[], int],
) -> Decision:
    """Wrap a store's results in a :class:`Decision` reporting the tightest rate."""
    limit, remaining, reset_at, retry_after = tightest(admitted, charges, results, clock)
    return Decision(admitted, limit, remaining, reset_at, retry_after, charges, results)


class PolicyDecision(Decision):
    """A :class:`Decision` about an HTTP request, with the answer to send.

    ``status_code`` is 200 when allowed, 429 over a limit or blocked, 401 for a
    missing or unknown key, 400 when a limit's key is missing from the request.
    ``headers`` and ``body`` are built on first use.
    """

    __slots__ = ("_body", "_headers", "_limiter", "category", "client_ip", "concurrency",
                 "detail", "exempt", "key_id", "leases", "lockouts", "method", "path",
                 "plan", "response", "status_code")  # fmt: skip

    _limiter: _LimiterCore
    _headers: dict[str, str] | None
    _body: bytes | None
    category: str | None
    plan: str | None
    key_id: str | None
    client_ip: str
    status_code: int
    response: str | None
    exempt: bool
    detail: str
    method: str
    path: str
    #: ``(lease key, cap, ttl seconds)`` for each concurrency cap to take
    concurrency: tuple[tuple[str, int, float], ...]
    #: ``(lockout, counter key)`` for each lockout the response status feeds
    lockouts: tuple[tuple[CompiledLockout, str], ...]
    #: ``(lease key, lease id)`` held for this request: ``check(lease=True)`` only
    leases: tuple[tuple[str, str], ...]

    def __init__(
        self,
        limiter: _LimiterCore,
        allowed: bool,
        status_code: int,
        response: str | None,
        category: str | None,
        plan: str | None,
        key_id: str | None,
        client_ip: str,
        method: str,
        path: str,
        limit: int = 0,
        remaining: int = 0,
        reset_at: float = 0.0,
        retry_after: float = 0.0,
        charges: Sequence[Charge] = (),
        results: Sequence[ChargeResult] = (),
        names: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        # Decision.__init__'s fields, set here: one call less on every request
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_at = reset_at
        self.retry_after = retry_after
        self._charges = charges
        self._results = results
        self._names = names
        self._statuses = None
        self._limiter = limiter
        self._headers = headers
        self._body = None
        self.status_code = status_code
        self.response = response
        self.category = category
        self.plan = plan
        self.key_id = key_id
        self.client_ip = client_ip
        self.method = method
        self.path = path
        self.exempt = False
        self.detail = ""
        self.concurrency = ()
        self.lockouts = ()
        self.leases = ()

    @property
    def headers(self) -> dict[str, str]:
        """Response header fields per the policy (none for exempt requests)."""
        if self._headers is None:
            self._headers = self._limiter._headers_for(self)
        return self._headers

    @property
    def body(self) -> bytes | None:
        """The JSON body of a refusal; ``None`` when allowed."""
        if self._body is None and self.status_code != 200:
            self._body = self._limiter._body_for(self)
        return self._body

    @property
    def content_type(self) -> str | None:
        """The body's media type; ``None`` when allowed."""
        if self.response is None:
            return None
        return self._limiter.compiled.bodies[self.response].content_type

    def __repr__(self) -> str:
        return (
            f"PolicyDecision(status_code={self.status_code}, allowed={self.allowed}, "
            f"category={self.category!r}, plan={self.plan!r}, limit={self.limit}, "
            f"remaining={self.remaining}, retry_after={self.retry_after:.3f})"
        )

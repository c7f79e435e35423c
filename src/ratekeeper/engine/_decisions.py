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
from typing import Protocol

from ..policy.compiler import CompiledLockout, CompiledPolicy
from ..rates import NS_PER_SECOND as _NS
from ..stores.base import Charge, ChargeResult
from ._leases import Lease

__all__ = [
    "ADMITTED",
    "BAD_REQUEST",
    "BLOCKED",
    "EXEMPT",
    "LIMITED",
    "OVER_CAP",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "Answers",
    "AnswersFactory",
    "Decision",
    "PolicyDecision",
    "RateStatus",
    "RawHeaders",
    "build_decision",
    "tightest",
]


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

    Every rate applied, as plain data: ``charges`` (the store charges,
    ``(spec, key, cost, shadow)``), ``results`` (the store's
    ``(allowed, remaining, reset_ns, retry_ns)`` for each; none when no rate
    was decided) and ``names`` (each rate's label); ``statuses`` reads them.
    """

    __slots__ = (
        "_statuses",
        "allowed",
        "charges",
        "limit",
        "names",
        "remaining",
        "reset_at",
        "results",
        "retry_after",
    )

    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    retry_after: float
    charges: Sequence[Charge]
    results: Sequence[ChargeResult]
    names: Sequence[str]

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
        self.charges = charges
        self.results = results
        self.names = names
        self._statuses: tuple[RateStatus, ...] | None = None

    @property
    def statuses(self) -> tuple[RateStatus, ...]:
        """One status per rate checked, in the order they were charged.

        None when no rate was decided (a refusal before the store, or a block).
        """
        if self._statuses is None:
            names = self.names
            if not self.results:
                self._statuses = ()
                return self._statuses
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
                    enumerate(zip(self.charges, self.results, strict=True))
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
    admitted: bool, charges: Sequence[Charge], results: Sequence[ChargeResult]
) -> tuple[int, int, float, float] | None:
    """``(limit, remaining, reset_at, retry_after)`` of the rate a decision reports.

    Admitted: the enforced rate with the least remaining (ties: the later
    reset). Refused: the enforced rate that needs the longest wait. ``None``
    with no enforced rate at all (everything unlimited or shadow): such a
    decision reports ``(0, 0, now, 0.0)``.
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
            return None
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
    found = tightest(admitted, charges, results)
    if found is None:
        return Decision(admitted, 0, 0, clock() / _NS, 0.0, charges, results)
    limit, remaining, reset_at, retry_after = found
    return Decision(admitted, limit, remaining, reset_at, retry_after, charges, results)


# What a decision about an HTTP request came to: the answer is written from it.
#: allowed; every limit was charged
ADMITTED = "admitted"
#: allowed without counting: an exempt or unmatched route, an exempt network
EXEMPT = "exempt"
#: refused by a rate (by the store, or by a counter remembered over its limit)
LIMITED = "limited"
#: refused because a concurrency cap was full; nothing was charged
OVER_CAP = "over_cap"
#: refused because a lockout or the penalty blocks the client; nothing was charged
BLOCKED = "blocked"
#: refused: no API key, or an unknown one (401)
UNAUTHORIZED = "unauthorized"
#: refused: the request lacks what a limit counts by, a node id or a header (400)
BAD_REQUEST = "bad_request"
#: refused: the store could not decide and fails closed (503)
UNAVAILABLE = "unavailable"

RawHeaders = list[tuple[bytes, bytes]]


class Answers(Protocol):
    """Writes what a :class:`PolicyDecision` answers: header fields, body, content type.

    The engine decides and imports no HTTP: a limiter is given the renderer
    of its compiled policy (:class:`ratekeeper.http.answers.PolicyAnswers` for
    the limiters users build, ``ratekeeper.Limiter``), and every decision it
    makes carries it, so that ``decision.headers`` works wherever the decision
    travels. Everything is written from the decision's own data and the
    policy's settings: no clock is read, nothing is asked of a limiter.
    """

    def headers(self, decision: PolicyDecision) -> dict[str, str]:
        """The response header fields (none for exempt requests)."""
        ...

    def raw_headers(self, decision: PolicyDecision) -> RawHeaders:
        """``headers`` as lower-case latin-1 byte pairs, as ASGI sends them."""
        ...

    def body(self, decision: PolicyDecision) -> bytes:
        """The body of a refusal."""
        ...

    def content_type(self, decision: PolicyDecision) -> str | None:
        """The body's media type; ``None`` when allowed."""
        ...

    def one_rate_writer(self, limit: int) -> Callable[[ChargeResult], RawHeaders] | None:
        """Writes an admitted answer on one enforced rate of ``limit`` from the store's result.

        What a lane answers with (:mod:`ratekeeper.engine._lanes`); ``None``
        when such an answer needs more than the numbers of one result (the
        IETF fields), and then there is no lane.
        """
        ...


#: makes the renderer of a compiled policy's answers
AnswersFactory = Callable[[CompiledPolicy], Answers]


class PolicyDecision(Decision):
    """A :class:`Decision` about an HTTP request: plain data, and the answer to send.

    ``status_code`` is 200 when allowed, 429 over a limit or blocked, 401 for a
    missing or unknown key, 400 when a limit's key is missing from the request,
    503 when the store cannot decide. ``outcome`` says which (the module's
    constants), ``refused_by`` names the lockout (``"lockout:NAME"``), the
    penalty (``"penalty"``) or the concurrency cap (``"cap:NAME"``) that
    refused; a rate's refusal is in ``statuses``. ``decided_at_ns`` is the
    store's clock when it was decided: ``headers`` and ``body`` are written
    from the decision as it was then, whenever they are read, by the policy's
    answer renderer the decision carries (:class:`Answers`), on first use.
    """

    __slots__ = ("_answers", "_body", "_headers", "category", "client_ip", "concurrency",
                 "decided_at_ns", "detail", "exempt", "item_ends", "key_id", "lease", "lockouts",
                 "method", "outcome", "path", "plan", "refused_by", "response",
                 "status_code")  # fmt: skip

    _answers: Answers
    _headers: dict[str, str] | None
    _body: bytes | None
    outcome: str
    category: str | None
    plan: str | None
    key_id: str | None
    client_ip: str
    status_code: int
    #: the policy response (body template) it answers with; ``None`` when allowed
    response: str | None
    exempt: bool
    detail: str
    method: str
    path: str
    decided_at_ns: int
    refused_by: str | None
    #: ``(lease key, cap, ttl seconds)`` for each concurrency cap to take
    concurrency: tuple[tuple[str, int, float], ...]
    #: ``(lockout, counter key)`` for each lockout the response status feeds
    lockouts: tuple[tuple[CompiledLockout, str], ...]
    #: the concurrency slots held for this request (``check(lease=True)`` only), an
    #: opaque handle: give them back with ``release(decision)``
    lease: Lease | None
    #: ``check_items``: where each item's rates end in ``charges``/``results`` (item
    #: ``i``'s are ``[item_ends[i-1], item_ends[i])``; an exempt item has none); else ()
    item_ends: tuple[int, ...]

    def __init__(
        self,
        answers: Answers,
        outcome: str,
        allowed: bool,
        status_code: int,
        response: str | None,
        category: str | None,
        plan: str | None,
        key_id: str | None,
        client_ip: str,
        method: str,
        path: str,
        decided_at_ns: int,
        limit: int = 0,
        remaining: int = 0,
        reset_at: float = 0.0,
        retry_after: float = 0.0,
        charges: Sequence[Charge] = (),
        results: Sequence[ChargeResult] = (),
        names: Sequence[str] = (),
        concurrency: tuple[tuple[str, int, float], ...] = (),
        lockouts: tuple[tuple[CompiledLockout, str], ...] = (),
    ) -> None:
        # Decision.__init__'s fields, set here: one call less on every request
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_at = reset_at
        self.retry_after = retry_after
        self.charges = charges
        self.results = results
        self.names = names
        self._statuses = None
        self._answers = answers
        self._headers = None
        self._body = None
        self.outcome = outcome
        self.status_code = status_code
        self.response = response
        self.category = category
        self.plan = plan
        self.key_id = key_id
        self.client_ip = client_ip
        self.method = method
        self.path = path
        self.decided_at_ns = decided_at_ns
        self.exempt = outcome is EXEMPT  # the engine's constants: one object each
        self.refused_by = None
        self.detail = ""
        self.concurrency = concurrency
        self.lockouts = lockouts
        self.lease = None
        self.item_ends = ()

    @property
    def headers(self) -> dict[str, str]:
        """Response header fields per the policy (none for exempt requests)."""
        if self._headers is None:
            self._headers = self._answers.headers(self)
        return self._headers

    @property
    def body(self) -> bytes | None:
        """The body of a refusal, per the policy; ``None`` when allowed."""
        if self._body is None and self.status_code != 200:
            self._body = self._answers.body(self)
        return self._body

    @property
    def content_type(self) -> str | None:
        """The body's media type; ``None`` when allowed."""
        if self.response is None:
            return None
        return self._answers.content_type(self)

    def __repr__(self) -> str:
        return (
            f"PolicyDecision(status_code={self.status_code}, allowed={self.allowed}, "
            f"category={self.category!r}, plan={self.plan!r}, limit={self.limit}, "
            f"remaining={self.remaining}, retry_after={self.retry_after:.3f})"
        )

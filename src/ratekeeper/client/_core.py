"""The retry decision, written once with no I/O: a generator the transports drive.

The shape of httpx's ``auth_flow`` (STYLE.md section 2): :func:`retry_flow`
yields what it needs done, :class:`Send` (send the request, once more),
:class:`Sleep` (wait so many seconds, for a reason) or :class:`AwaitGate`
(wait until another request's answer is in), and is sent back a
:class:`Reply`: the clock readings after the action and, after a send, the
answer's status and fields. It returns a :class:`Verdict`: deliver the last
response, or give up (the driver raises :class:`RetryError`). The sync and
async httpx transports and the requests adapter only send, sleep and wait;
every choice is here, so a test drives the generator with a made-up clock and
no server.

What it decides (docs/client.md):

- **which answers are retried**: a 429 for any method whose body can be sent
  again (the server did not process a refused request), a 503 for idempotent
  methods only; a body that cannot be replayed is never resent;
- **how long to wait**: the server's wait (``_fields.read_advice``: the
  ``Retry-After``, IETF, ``RateLimit-Reset``, ``X-RateLimit-Reset`` order)
  plus jitter drawn uniformly from [0, min(10 % of it, 1 s)], never less; with
  no usable field, exponential backoff with full jitter;
- **when to give up**: after ``max_retries`` retries; at once when the
  server asks for more than ``max_wait`` or the wait would take the total over
  ``max_total_wait``;
- **pacing** (with a :class:`~ratekeeper.client._pacing.Pacer`): before each
  send, the pacer's admission, waited as it says (no jitter: the pacer lets
  one request probe a new window alone); a pacing wait longer than the caps
  is not waited (the request goes, and its answer decides).
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from ratekeeper.client._fields import Advice, Get, read_advice
from ratekeeper.client._pacing import Gate, PaceKey, Pacer, Ticket

__all__ = [
    "IDEMPOTENT_METHODS",
    "Answer",
    "AwaitGate",
    "Deliver",
    "GiveUp",
    "Reply",
    "RequestFacts",
    "RetryError",
    "RetryPolicy",
    "Send",
    "Sleep",
    "WaitEvent",
    "WaitHook",
    "retry_flow",
]

logger = logging.getLogger("ratekeeper.client")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class RetryError(Exception):
    """The client gave up: ``response`` (the last answer), ``attempts`` (sends), ``waited`` (s)."""

    def __init__(self, message: str, *, response: Any, attempts: int, waited: float) -> None:
        super().__init__(message)
        self.response = response
        self.attempts = attempts
        self.waited = waited


@dataclass(frozen=True, slots=True)
class WaitEvent:
    """One wait the client is about to make, told to ``on_wait`` (for metrics) and logged.

    ``reason``: ``retry-after``, ``ratelimit``, ``ratelimit-reset``,
    ``x-ratelimit-reset`` (a server's wait after a 429/503), ``backoff`` (no
    usable field), ``pacing`` (the quota is spent until its reset), ``smooth``
    (spreading what is left). ``status`` is the answer waited after (``None``
    for a pacing wait before a send); ``attempt`` the sends made so far.
    """

    method: str
    url: str
    reason: str
    seconds: float
    attempt: int
    status: int | None
    waited: float


class WaitHook(Protocol):
    def __call__(self, event: WaitEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The settings of a transport; defaults as in ``RetryTransport``'s signature."""

    max_retries: int = 5
    max_wait: float = 60.0
    max_total_wait: float | None = None
    backoff_base: float = 0.5  # the first backoff is drawn from [0, base]
    backoff_max: float = 30.0
    jitter_share: float = 0.1  # of a server's wait, at most jitter_most
    jitter_most: float = 1.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not self.max_wait >= 0:
            raise ValueError("max_wait must be >= 0")
        if self.max_total_wait is not None and not self.max_total_wait >= 0:
            raise ValueError("max_total_wait must be >= 0 or None")


@dataclass(frozen=True, slots=True)
class Answer:
    """What the core reads of a response: its status and its fields (``get`` by lower-case name)."""

    status: int
    get: Get


@dataclass(frozen=True, slots=True)
class Reply:
    """What the driver sends back: its clocks after the action, and the answer after a send."""

    now: float  # the monotonic clock waits are measured on
    wall: float  # epoch seconds, for the instants servers write
    answer: Answer | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Send the request (again)."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (never negative)."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class AwaitGate:
    """Wait until ``gate`` opens: the first answer for a quota nobody knew."""

    gate: Gate


Action = Send | Sleep | AwaitGate


@dataclass(frozen=True, slots=True)
class Deliver:
    """Return the last response to the caller."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Raise :class:`RetryError` with the last response; ``why`` says which cap."""

    why: str


Verdict = Deliver | GiveUp


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the core needs of a request: method, URL (for hooks), replayable, its quota."""

    method: str
    url: str
    replayable: bool
    key: PaceKey | None  # None: not paced


def retryable(status: int, method: str, replayable: bool) -> bool:
    if not replayable:
        return False
    if status == 429:
        return True
    return status == 503 and method.upper() in IDEMPOTENT_METHODS


def server_wait(given: float, policy: RetryPolicy, uniform: Callable[[], float]) -> float:
    """A wait the server gave, plus jitter in [0, min(10 % of it, 1 s)]: never shorter."""
    jitter = min(given * policy.jitter_share, policy.jitter_most)
    return max(0.0, given) + max(0.0, jitter) * uniform()


def backoff_wait(retry: int, policy: RetryPolicy, uniform: Callable[[], float]) -> float:
    """Full jitter, ``uniform(0, min(cap, base * 2**retry))``, for retry ``retry`` (from 0)."""
    ceiling = min(policy.backoff_max, policy.max_wait, policy.backoff_base * 2.0 ** min(retry, 60))
    return max(0.0, ceiling) * uniform()


class Hooks:
    """Where waits are told: the log (one line each) and the optional callback."""

    __slots__ = ("on_wait",)

    def __init__(self, on_wait: WaitHook | None) -> None:
        self.on_wait = on_wait

    def tell(self, event: WaitEvent) -> None:
        logger.info(
            "ratekeeper.client: waiting %.3f s before %s %s (%s; status %s, attempt %d)",
            event.seconds, event.method, event.url, event.reason, event.status, event.attempt,
        )  # fmt: skip
        if self.on_wait is not None:
            self.on_wait(event)


def retry_flow(
    facts: RequestFacts,
    start: Reply,
    policy: RetryPolicy,
    pacer: Pacer | None,
    hooks: Hooks,
    uniform: Callable[[], float] = _random.random,
) -> Generator[Action, Reply, tuple[Verdict, int, float]]:
    """The decision for one request, from ``start`` (the clocks before it); returns
    (verdict, attempts, seconds waited)."""
    attempts, waited, reply = 0, 0.0, start
    ticket: Ticket | None = None
    try:
        while True:
            if pacer is not None and facts.key is not None:
                while True:
                    admission = pacer.admit(facts.key, reply.now)
                    if admission.ticket is not None:
                        ticket = admission.ticket
                        break
                    if admission.gate is not None:
                        reply = yield AwaitGate(admission.gate)
                        continue
                    # no jitter: after the reset one request probes alone (the pacer), so
                    # this client's crowd does not return at once anyway, and the
                    # reset is already rounded up to whole seconds on the wire
                    wait = max(0.0, admission.seconds)
                    if wait > policy.max_wait or _over_total(waited + wait, policy):
                        break  # not waited: the request goes and its answer decides
                    hooks.tell(_event(facts, admission.reason, wait, attempts, None, waited))
                    reply = yield Sleep(wait, admission.reason)
                    waited += wait
            reply = yield Send()
            attempts += 1
            answer = reply.answer
            assert answer is not None  # a send is always answered (or raises)
            advice = read_advice(answer.get, reply.wall)
            if ticket is not None and pacer is not None:
                pacer.learn(ticket, reply.now, answer.status, advice)
                ticket = None
            if not retryable(answer.status, facts.method, facts.replayable):
                return Deliver(), attempts, waited
            if attempts > policy.max_retries:
                return GiveUp(f"{policy.max_retries} retries made"), attempts, waited
            wait, reason = _retry_wait(advice, attempts - 1, policy, uniform)
            if advice.wait is not None and advice.wait > policy.max_wait:
                why = (
                    f"the server asks for {advice.wait:g} s, over max_wait ({policy.max_wait:g} s)"
                )
                return GiveUp(why), attempts, waited
            if _over_total(waited + wait, policy):
                why = f"waiting {wait:.3f} s more would pass max_total_wait"
                return GiveUp(why), attempts, waited
            hooks.tell(_event(facts, reason, wait, attempts, answer.status, waited))
            reply = yield Sleep(wait, reason)
            waited += wait
    finally:
        if ticket is not None and pacer is not None:
            pacer.forget(ticket)


def _retry_wait(
    advice: Advice, retry: int, policy: RetryPolicy, uniform: Callable[[], float]
) -> tuple[float, str]:
    if advice.wait is not None and advice.source is not None:
        return min(server_wait(advice.wait, policy, uniform), policy.max_wait), advice.source
    return backoff_wait(retry, policy, uniform), "backoff"


def _over_total(total: float, policy: RetryPolicy) -> bool:
    return policy.max_total_wait is not None and total > policy.max_total_wait


def _event(
    facts: RequestFacts,
    reason: str,
    seconds: float,
    attempt: int,
    status: int | None,
    waited: float,
) -> WaitEvent:
    return WaitEvent(facts.method, facts.url, reason, seconds, attempt, status, waited)

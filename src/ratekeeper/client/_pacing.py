"""Pacing: what one client knows about each quota it spends, shared by its threads and tasks.

A quota is keyed by (scheme, host, port, SHA-256 of the credentials headers):
the same API key on the same host is one quota whoever sends. For each key
the pacer holds what the last answers said (requests left, when the quota
returns) and decides, before a request is sent, whether it goes now or waits:

- a key nobody has heard from yet sends **one** request alone (the probe);
  the others wait for its answer (a :class:`Gate`), so a cold start of 50
  tasks learns the quota before it spends it;
- while requests are left above the floor, each admitted request takes one
  (the in-flight ones are counted: an answer's ``remaining`` is believed
  minus the requests still on their way);
- at the floor, requests wait until the reset, then the key is unknown again
  and one request probes the new window;
- the smooth mode spreads what is left over the time left instead.

All of it is plain state under one lock (a few dict operations: no I/O, no
waiting under it); the drivers do the waiting. The keys are an LRU of at most
``max_keys`` entries, so a client talking to many hosts or keys does not grow
without bound; a key evicted while others wait on its probe opens their gate.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ratekeeper.client._fields import Advice

__all__ = ["Admission", "Gate", "PaceKey", "Pacer", "Ticket", "pace_key"]

PaceKey = tuple[str, str, int, str]
DEFAULT_PORTS = {"http": 80, "https": 443}


def pace_key(
    scheme: str, host: str, port: int | None, credentials: Iterable[str | None]
) -> PaceKey:
    """The quota a request spends: its origin and a digest of its credentials."""
    digest = hashlib.sha256()
    for value in credentials:
        digest.update(b"\x00" if value is None else b"\x01" + value.encode("utf-8", "replace"))
    scheme = scheme.lower()
    return scheme, host.lower(), port or DEFAULT_PORTS.get(scheme, 0), digest.hexdigest()


class Gate:
    """Opened once, when a probe's answer (or its failure) is in; waiters subscribe a callback.

    A callback subscribed after the opening is called at once, so a waiter
    never misses it. Callbacks must not block (``Event.set``,
    ``loop.call_soon_threadsafe``).
    """

    __slots__ = ("_callbacks", "_lock", "_open")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._callbacks: list[Callable[[], object]] = []

    def subscribe(self, callback: Callable[[], object]) -> None:
        with self._lock:
            if not self._open:
                self._callbacks.append(callback)
                return
        callback()

    def open(self) -> None:
        with self._lock:
            self._open, callbacks, self._callbacks = True, self._callbacks, []
        for callback in callbacks:
            callback()


@dataclass(frozen=True, slots=True)
class Ticket:
    """A request the pacer let go: its key, and whether it is its key's probe."""

    key: PaceKey
    probe: bool


@dataclass(frozen=True, slots=True)
class Admission:
    """The pacer's answer: go (``ticket``), wait ``seconds``, or wait for a ``gate``."""

    ticket: Ticket | None = None
    seconds: float = 0.0
    reason: str = ""
    gate: Gate | None = None


class _Quota:
    __slots__ = ("gate", "in_flight", "known", "next_at", "probing", "remaining", "reset_at")

    def __init__(self) -> None:
        self.known = False  # an answer came since the last reset
        self.probing = False
        self.gate: Gate | None = None
        self.in_flight = 0
        self.remaining: int | None = None
        self.reset_at: float | None = None  # the caller's clock
        self.next_at = 0.0  # smooth mode: the next send


class Pacer:
    """The quotas one client spends; ``admit`` before a send, ``learn``/``forget`` after."""

    def __init__(self, *, floor: int = 0, smooth: bool = False, max_keys: int = 1024) -> None:
        if floor < 0 or max_keys < 1:
            raise ValueError("floor must be >= 0 and max_keys >= 1")
        self.floor = floor
        self.smooth = smooth
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._quotas: OrderedDict[PaceKey, _Quota] = OrderedDict()

    def __len__(self) -> int:
        return len(self._quotas)

    def _quota(self, key: PaceKey) -> _Quota:
        quota = self._quotas.get(key)
        if quota is None:
            quota = self._quotas[key] = _Quota()
            while len(self._quotas) > self.max_keys:
                _, evicted = self._quotas.popitem(last=False)
                if evicted.gate is not None:
                    evicted.gate.open()
        else:
            self._quotas.move_to_end(key)
        return quota

    def admit(self, key: PaceKey, now: float) -> Admission:
        with self._lock:
            quota = self._quota(key)
            if quota.reset_at is not None and now >= quota.reset_at:
                quota.known, quota.remaining, quota.reset_at = False, None, None
            if not quota.known:
                if quota.probing and quota.gate is not None:
                    return Admission(gate=quota.gate, reason="first-answer")
                quota.probing, quota.gate = True, Gate()
                quota.in_flight += 1
                return Admission(Ticket(key, probe=True))
            if quota.remaining is not None and quota.reset_at is not None:
                left = quota.reset_at - now
                if quota.remaining <= self.floor:
                    return Admission(seconds=left, reason="pacing")
                if self.smooth:
                    if now < quota.next_at:
                        return Admission(seconds=quota.next_at - now, reason="smooth")
                    quota.next_at = now + left / (quota.remaining - self.floor)
                quota.remaining -= 1
            quota.in_flight += 1
            return Admission(Ticket(key, probe=False))

    def learn(self, ticket: Ticket, now: float, status: int, advice: Advice) -> None:
        """What the answer to ``ticket``'s request says about its quota."""
        with self._lock:
            quota = self._quota(ticket.key)
            gate = self._settle(quota, ticket)
            quota.known = True
            if status == 429 and advice.wait is not None:
                quota.remaining = 0
                quota.reset_at = max(quota.reset_at or now, now + advice.wait)
            elif advice.remaining is not None and advice.reset is not None:
                remaining = advice.remaining - quota.in_flight
                reset_at = now + advice.reset
                if quota.remaining is None or quota.reset_at is None:
                    quota.remaining, quota.reset_at = remaining, reset_at
                else:
                    quota.remaining = min(quota.remaining, remaining)
                    quota.reset_at = max(quota.reset_at, reset_at)
        if gate is not None:
            gate.open()

    def forget(self, ticket: Ticket) -> None:
        """The request of ``ticket`` got no answer (an error, a cancel): let others go on."""
        with self._lock:
            quota = self._quotas.get(ticket.key)
            gate = None if quota is None else self._settle(quota, ticket)
        if gate is not None:
            gate.open()

    @staticmethod
    def _settle(quota: _Quota, ticket: Ticket) -> Gate | None:
        quota.in_flight = max(0, quota.in_flight - 1)
        if ticket.probe and quota.probing:
            quota.probing, gate, quota.gate = False, quota.gate, None
            return gate
        return None

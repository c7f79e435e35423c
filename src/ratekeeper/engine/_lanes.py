"""Lanes: requests decided by their route and client IP alone, in a few steps.

The commonest limit of all is "N requests per window per client IP" on a
category that needs no identity. For such a route the whole of ``check`` (route,
identify, plan the charges, ask the store, build a :class:`PolicyDecision`,
write its headers) comes down to one store step on a key made from the IP,
and header bytes made from the store's numbers. A :class:`Lane` is that
reduction, worked out once per route by :meth:`Limiter.lane` and kept; the
middleware takes it when there is one and the general path otherwise.

A lane exists only where it answers exactly as ``check`` would: one enforced
rate counted by client IP alone (an exempt network's requests are let through
uncounted, as ``check`` does), no identity, no concurrency cap, no lockout
or penalty in the policy, a store whose single-charge step never waits
(the memory store) and no refusals remembered at the moment. Its refusals are
turned into the general path's :class:`PolicyDecision` (body, headers, remembered
refusals), so only admitted requests skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..identity import ClientAddresses
from ..stores.base import ChargeResult, LimitSpec
from ._decisions import ADMITTED, EXEMPT, LIMITED
from ._events import DecisionEvent, DecisionHook

if TYPE_CHECKING:
    from ..policy.compiler import CompiledCategory, CompiledNetwork
    from ._decisions import PolicyDecision

__all__ = ["HookedLane", "Lane"]

RawHeaders = list[tuple[bytes, bytes]]


class Lane:
    """One route's requests, decided from the client IP alone (see the module docstring).

    ``admit(ip)`` charges the request and gives the store's
    ``(allowed, remaining, reset_ns, retry_ns)``; ``raw_headers(result)``
    writes an admitted request's header bytes from those numbers (the policy's
    answer renderer wrote that function: ``Answers.one_rate_writer``);
    ``decision`` makes the general path's :class:`PolicyDecision` of the same
    result (``decide``, given by the limiter that made the lane).
    """

    __slots__ = ("_addresses", "_apply_one", "_decide", "_head", "_plain_ipv4", "category",
                 "method", "names", "path", "raw_headers", "resolve_ip", "spec",
                 "units")  # fmt: skip

    def __init__(
        self,
        category: CompiledCategory,
        names: tuple[str, ...],
        head: str,
        spec: LimitSpec,
        units: int,
        method: str,
        path: str,
        *,
        apply_one: Callable[[LimitSpec, str, int], ChargeResult],
        raw_headers: Callable[[ChargeResult], RawHeaders],
        resolve_ip: bool,
        addresses: ClientAddresses[CompiledNetwork],
        decide: Callable[[Lane, str, ChargeResult], PolicyDecision],
    ) -> None:
        self._apply_one = apply_one
        self._decide = decide
        self._head = head
        self.spec = spec
        self.units = units
        #: an admitted request's header fields, from the store's result
        self.raw_headers = raw_headers
        self.category = category
        self.names = names
        #: as the general path reports them: upper-case method, normalized path
        self.method = method
        self.path = path
        #: whether the client IP must first be resolved through trusted proxies
        self.resolve_ip = resolve_ip
        self._addresses = addresses
        self._plain_ipv4 = addresses.plain_ipv4

    def key(self, ip: str) -> str:
        """The counter key of a request from ``ip`` (the general path's key)."""
        return self._head + self._addresses.counted(ip) + "}"

    def admit(self, ip: str) -> ChargeResult | None:
        """Charge a request from ``ip`` (already resolved) and give the store's answer.

        The counter is the one of ``ip``'s counted form (its /64 for IPv6), as
        in ``check``; an IPv4 address counted whole, with no policy networks,
        needs no lookup. ``None``: ``ip`` is in an exempt network, so the
        request is not limited (the app answers it untouched, as ``check``'s
        exempt decisions say).
        """
        if not self._plain_ipv4 or ":" in ip:
            ip, network = self._addresses.lookup(ip)
            if network is not None and network.exempt:
                return None
        return self._apply_one(self.spec, self._head + ip + "}", self.units)

    def decision(self, ip: str, result: ChargeResult) -> PolicyDecision:
        """The :class:`PolicyDecision` ``check`` would have made of this result."""
        return self._decide(self, ip, result)


class HookedLane(Lane):
    """A lane of a limiter with decision hooks: every admit told as an event.

    Only limiters built with hooks make these, so the plain lane's admit stays
    as short as it was. Exempt-network requests are told as ``exempt``.
    """

    __slots__ = ("_hook", "_now", "_refused_status")

    def __init__(
        self,
        *args: Any,
        hook: DecisionHook,
        now: Callable[[], int],
        refused_status: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._hook = hook
        self._now = now
        self._refused_status = refused_status

    def admit(self, ip: str) -> ChargeResult | None:
        start = perf_counter()
        result = super().admit(ip)
        if result is None:
            outcome, allowed, status = EXEMPT, True, 200
        elif result[0]:
            outcome, allowed, status = ADMITTED, True, 200
        else:
            outcome, allowed, status = LIMITED, False, self._refused_status
        self._hook(
            DecisionEvent(
                self._now(), outcome, allowed, status, self.category.name, None, None, None,
                self.units, perf_counter() - start,
            )
        )  # fmt: skip
        return result

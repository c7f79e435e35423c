"""The policy-driven limiters: thin sync and async runners of the decision flow.

>>> limiter = Limiter(load_policy("examples/scanner.yaml"), answers=PolicyAnswers)  # doctest: +SKIP
>>> d = limiter.check(method="POST", path="/api/scans",
...                   headers={"X-API-Key": "demo-free"}, client_ip="203.0.113.7")  # doctest: +SKIP
>>> d.allowed, d.plan, d.category, d.status_code                                # doctest: +SKIP
(True, 'free', 'scans', 200)

Everything but the store calls is :class:`~ratekeeper.engine._flow.LimiterCore`:
route, identify, plan, remembered refusals, the step, the decision. Here are
the store calls, written twice: a request whose step is its charges alone goes
straight to the store's ``apply_one``/``apply`` (the measured short way, see
docs/performance-middleware.md); any other is the flow, run by
:func:`~ratekeeper.engine._stepping.run` or ``run_async``.

Concurrency caps and login lockouts live as long as the response, so ``check``
reports them (``decision.concurrency``, ``decision.lockouts``). With
``lease=True`` it also takes the leases, within the same all-or-nothing
decision (a request over a cap charges no rate); the middleware gives them back
with ``release`` once the response is over and feeds the response status to
``record_response``.

The limiters users build are ``ratekeeper.Limiter`` and ``ratekeeper.AsyncLimiter``
(:mod:`ratekeeper.limiter`): these, given the HTTP answer renderer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any

from ..identity import Caller
from ..stores.base import ChargeResult, StoreUnavailableError
from ..stores.lockouts import Block
from ._decisions import PolicyDecision
from ._events import DecisionHook
from ._flow import LimiterCore, Prepared
from ._leases import Lease, held
from ._overrides import Override
from ._stepping import run, run_async
from ._usage import LimitUsage, usage_of

__all__ = ["AsyncLimiter", "Limiter"]


class Limiter(LimiterCore):
    """Decide HTTP requests against a policy, synchronously.

    ``policy`` is a loaded :class:`~ratekeeper.policy.Policy` or a path to a
    policy file; ``store`` defaults to a new :class:`MemoryStore`; ``answers``
    makes the policy's answer renderer (``ratekeeper.Limiter`` gives the HTTP one).
    """

    def check(
        self,
        *,
        method: str = "GET",
        path: str,
        headers: Mapping[str, str] | None = None,
        client_ip: str = "",
        cost: int = 1,
        lease: bool = False,
    ) -> PolicyDecision:
        """Decide one request and charge its limits (all or none).

        ``path`` is the decoded path (ASGI ``scope["path"]``, WSGI
        ``PATH_INFO``): percent-escapes are not decoded here. ``headers`` may
        use any case; ``client_ip`` is the connection's peer, and forwarding
        headers are believed only from the policy's trusted proxies. A
        ``cost`` below 1 raises ``ValueError`` before anything is counted.
        Text that is not valid (a lone surrogate, as servers that decode the
        path with ``surrogateescape`` give it) is escaped, never refused: the
        request is counted and answered like any other (:mod:`ratekeeper.text`).

        With ``lease=True`` the concurrency caps are part of the one decision:
        their leases are taken before the rates are charged, so a request over
        a cap takes nothing from its rates and a request refused by a rate
        holds no slot. An admitted decision then holds ``decision.lease`` (an
        opaque :class:`~ratekeeper.engine.Lease`); give it back with
        :meth:`release` when the response is over.
        """
        prepared = self.prepare(method, path, headers, client_ip, cost)
        if prepared.__class__ is not Prepared:
            return prepared  # type: ignore[return-value]
        if prepared.plain:  # the charges alone: straight to the store (as ``_decide``)
            if self._refused:
                known = self.known_refusal(prepared)
                if known is not None:
                    return known
            one = prepared.one
            try:
                if one is not None:
                    result = self._apply_one(one[0], one[1], one[2])
                    return self._decided(prepared, result[0], [result], self._now())
                admitted, results = self.store.apply(prepared.charges)
            except StoreUnavailableError:
                return self._unavailable(prepared)
            return self._decided(prepared, admitted, results, self._now())
        return run(self.flow(prepared, lease), self._step)

    def _listen(self, hook: DecisionHook) -> None:
        check, check_items, event = self.check, self.check_items, self.event

        def checked(**request: Any) -> PolicyDecision:
            started = perf_counter()
            decision = check(**request)
            hook(event(decision, request.get("cost", 1), started))
            return decision

        def checked_items(
            items: Sequence[tuple[str | None, Caller]],
            *,
            cost: int = 1,
            lease: bool = False,
            costs: Sequence[int] | None = None,
            overrides: Sequence[Override] | None = None,
        ) -> PolicyDecision:
            started = perf_counter()
            decision = check_items(items, cost=cost, lease=lease, costs=costs, overrides=overrides)
            hook(event(decision, cost, started))
            return decision

        vars(self).update(check=checked, check_items=checked_items)

    def check_items(
        self,
        items: Sequence[tuple[str | None, Caller]],
        *,
        cost: int = 1,
        lease: bool = False,
        costs: Sequence[int] | None = None,
        overrides: Sequence[Override] | None = None,
    ) -> PolicyDecision:
        """Decide several (category, caller) items together, all or none.

        The flow entered at "plan", for a caller that already knows who is
        calling and what for (a service given descriptors, not a method and a
        path): see :meth:`~ratekeeper.engine._flow.LimiterCore.prepare_items`.
        ``costs``: one per item in place of ``cost``, 0 a peek inside the step.
        ``overrides``: one per item, ``(rate, counter)`` charges that item one
        fixed-window ``rate`` counted under ``counter`` in place of its
        category's rates (Envoy's descriptor ``limit``); such an item may have
        no category (``None``). ``ValueError`` for a rate that cannot be
        counted exactly, before anything is charged.
        """
        prepared = self.prepare_items(items, cost, costs, overrides)
        if isinstance(prepared, PolicyDecision):
            return prepared
        return self._decide(prepared, lease)

    def _decide(self, prepared: Prepared, lease: bool) -> PolicyDecision:
        """The decision of ``prepared``: the charges alone straight to the store, else the flow.

        ``check`` has the same lines inline (one call less on every request).
        """
        if prepared.plain:  # the charges alone: straight to the store
            if self._refused:
                known = self.known_refusal(prepared)
                if known is not None:
                    return known
            one = prepared.one
            try:
                if one is not None:
                    result = self._apply_one(one[0], one[1], one[2])
                    return self._decided(prepared, result[0], [result], self._now())
                admitted, results = self.store.apply(prepared.charges)
            except StoreUnavailableError:
                return self._unavailable(prepared)
            return self._decided(prepared, admitted, results, self._now())
        return run(self.flow(prepared, lease), self._step)

    def usage(self, key_id: str) -> list[LimitUsage] | None:
        """What the key ``key_id`` has left of each of its limits now; consumes nothing.

        ``None`` for a key this limiter does not know. Only counters that
        depend on the key alone are read (not those counted by the request's
        client IP, node, header or path: :mod:`ratekeeper.engine._usage`).
        ``StoreUnavailableError`` when the store cannot say (down, or
        answering from a fallback).
        """
        counters = self.key_counters(key_id)
        if counters is None:
            return None
        store = self.store
        results = store.apply(counters.charges, consume=False)[1] if counters.charges else []
        in_use = [store.leases.in_use(lease_key) for _, lease_key, _, _ in counters.caps]
        if store.degraded:
            raise StoreUnavailableError("the store answers from its fallback: no usage to read")
        return usage_of(counters, results, in_use)

    def reset_key(self, key_id: str) -> int | None:
        """Give the key ``key_id`` its whole quota back: forget the counters it alone charges.

        Counters shared with other callers (by plan, globally, a user's),
        concurrency leases and lockouts stay. Returns how many counters the
        store held, ``None`` for an unknown key. A store without ``reset``
        is a ``TypeError``; one that cannot be reached, ``StoreUnavailableError``.
        """
        counters = self.key_counters(key_id)
        if counters is None:
            return None
        own = counters.own
        dropped = _resetter(self.store)(own) if own else 0
        self._refusals.forget(own)
        return dropped

    def release(self, decision: PolicyDecision) -> None:
        """Give back the concurrency leases ``check(lease=True)`` took for ``decision``."""
        lease, decision.lease = decision.lease, None
        if lease is not None:
            self.release_lease(lease)

    def release_lease(self, lease: Lease) -> int:
        """Give back the slots of ``lease``; how many were still held.

        A slot already given back, or ended by its ttl, counts for nothing: a
        lease released twice releases once.
        """
        release = self.store.leases.release
        given = 0
        for key, lease_id in held(lease):
            with contextlib.suppress(StoreUnavailableError):  # else it ends with its ttl
                given += release(key, lease_id)
        return given

    def record_response(self, decision: PolicyDecision, status_code: int) -> list[Block]:
        """Feed the response status to the decision's lockouts; returns new blocks."""
        record = self.store.lockouts.record_failure
        try:
            blocks = [record(key, rule) for key, rule in self.failures(decision, status_code)]
        except StoreUnavailableError:
            return []  # failing closed: the next request is refused anyway
        blocked = [block for block in blocks if block.blocked]
        if blocked and self.block_hook is not None:
            self.tell_blocks(decision, blocked)
        return blocked


class AsyncLimiter(LimiterCore):
    """The asyncio twin of :class:`Limiter`."""

    async def check(
        self,
        *,
        method: str = "GET",
        path: str,
        headers: Mapping[str, str] | None = None,
        client_ip: str = "",
        cost: int = 1,
        lease: bool = False,
    ) -> PolicyDecision:
        """Decide one request and charge its limits (all or none); see :meth:`Limiter.check`."""
        prepared = self.prepare(method, path, headers, client_ip, cost)
        if prepared.__class__ is not Prepared:
            return prepared  # type: ignore[return-value]
        one = prepared.one
        if one is not None and self._never_waits and not self._refused:
            # ``_decide``'s shortest way, inline: one coroutine less on every request
            try:
                result = self._apply_one(one[0], one[1], one[2])
            except StoreUnavailableError:
                return self._unavailable(prepared)
            return self._decided(prepared, result[0], [result], self._now())
        return await self._decide(prepared, lease)

    def _listen(self, hook: DecisionHook) -> None:
        check, check_items, event = self.check, self.check_items, self.event

        async def checked(**request: Any) -> PolicyDecision:
            started = perf_counter()
            decision = await check(**request)
            hook(event(decision, request.get("cost", 1), started))
            return decision

        async def checked_items(
            items: Sequence[tuple[str | None, Caller]],
            *,
            cost: int = 1,
            lease: bool = False,
            costs: Sequence[int] | None = None,
            overrides: Sequence[Override] | None = None,
        ) -> PolicyDecision:
            started = perf_counter()
            decision = await check_items(
                items, cost=cost, lease=lease, costs=costs, overrides=overrides
            )
            hook(event(decision, cost, started))
            return decision

        vars(self).update(check=checked, check_items=checked_items)

    async def check_items(
        self,
        items: Sequence[tuple[str | None, Caller]],
        *,
        cost: int = 1,
        lease: bool = False,
        costs: Sequence[int] | None = None,
        overrides: Sequence[Override] | None = None,
    ) -> PolicyDecision:
        """Decide several (category, caller) items together; see :meth:`Limiter.check_items`."""
        prepared = self.prepare_items(items, cost, costs, overrides)
        if isinstance(prepared, PolicyDecision):
            return prepared
        return await self._decide(prepared, lease)

    async def _decide(self, prepared: Prepared, lease: bool) -> PolicyDecision:
        if prepared.plain:  # the charges alone: straight to the store
            if self._refused:
                known = self.known_refusal(prepared)
                if known is not None:
                    return known
            one = prepared.one
            store = self.store
            try:
                if one is not None:
                    if self._never_waits:
                        result = self._apply_one(one[0], one[1], one[2])
                    else:
                        result = await self._apply_one_async(one[0], one[1], one[2])
                    return self._decided(prepared, result[0], [result], self._now())
                admitted, results = await store.apply_async(prepared.charges)
            except StoreUnavailableError:
                return self._unavailable(prepared)
            return self._decided(prepared, admitted, results, self._now())
        return await run_async(self.flow(prepared, lease), self._step_async)

    async def usage(self, key_id: str) -> list[LimitUsage] | None:
        """What the key ``key_id`` has left of each of its limits now; see :meth:`Limiter.usage`."""
        counters = self.key_counters(key_id)
        if counters is None:
            return None
        store = self.store
        results: list[ChargeResult] = []
        if counters.charges:
            results = (await store.apply_async(counters.charges, consume=False))[1]
        in_use = store.leases.in_use
        caps = [lease_key for _, lease_key, _, _ in counters.caps]
        if self._never_waits:
            used = [in_use(lease_key) for lease_key in caps]
        else:  # leases are counted by a sync call only: in a thread, off the event loop
            used = [await asyncio.to_thread(in_use, lease_key) for lease_key in caps]
        if store.degraded:
            raise StoreUnavailableError("the store answers from its fallback: no usage to read")
        return usage_of(counters, results, used)

    async def reset_key(self, key_id: str) -> int | None:
        """Forget the counters only the key ``key_id`` charges; see :meth:`Limiter.reset_key`."""
        counters = self.key_counters(key_id)
        if counters is None:
            return None
        own = counters.own
        dropped = await _resetter(self.store, asynchronous=True)(own) if own else 0
        self._refusals.forget(own)
        return dropped

    async def release(self, decision: PolicyDecision) -> None:
        """Give back the concurrency leases ``check(lease=True)`` took for ``decision``."""
        lease, decision.lease = decision.lease, None
        if lease is not None:
            await self.release_lease(lease)

    async def release_lease(self, lease: Lease) -> int:
        """Give back the slots of ``lease``; how many were still held (see ``Limiter``)."""
        release = self.store.leases.release_async
        given = 0
        for key, lease_id in held(lease):
            with contextlib.suppress(StoreUnavailableError):  # else it ends with its ttl
                given += await release(key, lease_id)
        return given

    async def record_response(self, decision: PolicyDecision, status_code: int) -> list[Block]:
        """Feed the response status to the decision's lockouts; returns new blocks."""
        record = self.store.lockouts.record_failure_async
        try:
            failures = self.failures(decision, status_code)
            blocks = [await record(key, rule) for key, rule in failures]
        except StoreUnavailableError:
            return []  # failing closed: the next request is refused anyway
        blocked = [block for block in blocks if block.blocked]
        if blocked and self.block_hook is not None:
            self.tell_blocks(decision, blocked)
        return blocked


def _resetter(store: object, *, asynchronous: bool = False) -> Any:
    """The store's ``reset`` (or ``reset_async``): a ``TypeError`` for a store without one."""
    name = "reset_async" if asynchronous else "reset"
    reset = getattr(store, name, None)
    if reset is None:
        raise TypeError(f"{type(store).__name__} cannot reset counters (it has no {name})")
    return reset

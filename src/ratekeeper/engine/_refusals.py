"""Counters known to be over their limit, each until the time it gave.

A counter that refused one unit stays refused until the time it gave: only
time frees room, other requests only take more. So a request charging it can
be refused without asking the store, as Envoy's rate limit service does with
its over-limit cache: under a flood of refused requests from one caller, a
store across a network is asked nothing. That never admits what the store
would refuse.

The cache is bounded (a :class:`~ratekeeper._memo.BoundedMemo`), forgotten when
the store forgets its counters (its ``generation`` changes) and not fed while
the store answers from a fallback (``degraded``): a fallback's refusals say
nothing about the real counters.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._memo import BoundedMemo
from ..stores.base import Charge, ChargeResult, LimitSpec, Store

__all__ = ["RefusalCache"]

#: counters remembered as over their limit before the cache starts over
MAX_REFUSED = 65_536


class RefusalCache:
    """The counters of one store known to be over their limit (module docstring).

    ``refused`` maps ``"slot key"`` to the time (ns) until which it refuses;
    readers test it for emptiness directly (no call on the hot path).
    """

    __slots__ = ("_generation", "_memo", "_store", "refused")

    def __init__(self, store: Store, size: int = MAX_REFUSED) -> None:
        self._store = store
        self._memo: BoundedMemo[str, int] = BoundedMemo(size)
        self.refused = self._memo.answers
        self._generation = store.generation

    def known(self, charges: Sequence[Charge]) -> tuple[int, int, int] | None:
        """``(index, until_ns, now_ns)`` of the first charge known to refuse, else ``None``.

        ``now_ns`` is the store's clock, read once when a remembered counter is found.
        """
        store = self._store
        if self._generation != store.generation:  # the store forgot every counter
            self.refused.clear()
            self._generation = store.generation
            return None
        refused = self.refused
        now = 0
        for index, (spec, key, units, shadow) in enumerate(charges):
            if shadow or units < 1:
                continue
            slot_key = spec.slot + " " + key
            until = refused.get(slot_key)
            if until is None:
                continue
            now = now or store.now_ns()
            if now >= until:
                refused.pop(slot_key, None)  # another thread may have dropped it
                continue
            return index, until, now
        return None

    def remember(self, charges: Sequence[Charge], results: Sequence[ChargeResult]) -> None:
        """Remember the counters that refused one unit, until the time each gave."""
        if self._store.degraded:
            return
        keep = self._memo.keep
        for (spec, key, units, shadow), (allowed, _, reset, _) in zip(
            charges, results, strict=True
        ):
            if not allowed and not shadow and units == 1:
                keep(spec.slot + " " + key, reset)

    def forget(self, counters: Sequence[tuple[LimitSpec, str]]) -> None:
        """Remember nothing of ``counters`` any more (their store counts were reset)."""
        refused = self.refused
        for spec, key in counters:
            refused.pop(spec.slot + " " + key, None)

"""One API key's counters, found by its id: read without consuming, or reset.

The admin API shows an operator how much of each limit a key has left now
and can give a key its whole quota back. Both start from the same plan:
every category the key's requests can fall into, charged as the key's own
requests are charged (its overrides, else its plan's values, else each
limit's default), keeping only the counters that depend on the key alone
and not on the request. A limit counted by client IP, node, a header or a
path parameter has one counter per request value, so it has no "usage of
this key" and is left out.

A counter is *own* when only this key's requests charge it (counted by
``api_key``, or by ``user`` for a key without a user); a counter shared
with other callers (by ``plan``, ``global``, or a user several keys have)
is shown but never reset: resetting it would hand quota to everyone else.

Nothing here does I/O: the limiters (:mod:`ratekeeper.engine._limiter`)
ask the store, ``apply(..., consume=False)`` to read and ``reset`` to forget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..policy.compiler import CompiledCategory, CompiledKey, CompiledPlan
from ..rates import NS_PER_SECOND as _NS
from ..stores.base import Charge, ChargeResult, LimitSpec
from ._charging import Charger

__all__ = ["KeyCounters", "LimitUsage", "find_key", "key_counters", "usage_of"]


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit of a key, now.

    ``remaining`` is what the key may still spend (units of a rate, free
    slots of a concurrency cap); ``reset_at`` (epoch seconds) is when a rate
    has its whole quota back, ``None`` for a cap (slots come back as responses
    end); ``window`` is the rate's window in seconds, ``None`` for a cap.
    ``shared``: other callers charge this counter too (``reset`` leaves it).
    """

    name: str
    limit: int
    remaining: int
    reset_at: float | None
    window: float | None
    shared: bool = False
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class KeyCounters:
    """The counters of one key: rates to peek (cost 1), caps to count, own rates to reset."""

    key_id: str
    plan: str
    #: ``(spec, counter key, 1, shadow)`` for each distinct rate counter
    charges: tuple[Charge, ...]
    #: the label of each of ``charges`` and whether it is shared
    names: tuple[tuple[str, bool], ...]
    #: ``(name, lease key, cap, shared)`` of each concurrency cap
    caps: tuple[tuple[str, str, int, bool], ...]

    @property
    def own(self) -> list[tuple[LimitSpec, str]]:
        """The rate counters only this key charges: what a reset forgets."""
        return [
            (charge[0], charge[1])
            for charge, (_, shared) in zip(self.charges, self.names, strict=True)
            if not shared
        ]


def find_key(records: Mapping[str, CompiledKey], key_id: str) -> CompiledKey | None:
    """The known key with id ``key_id`` (records by hash, as the limiter keeps them)."""
    for record in records.values():
        if record.id == key_id:
            return record
    return None


def _shared(by: tuple[str, ...], record: CompiledKey) -> bool:
    """Whether a counter counted ``by`` these parts is charged by callers besides ``record``."""
    return not all(part == "api_key" or (part == "user" and record.user is None) for part in by)


def key_counters(
    charger: Charger,
    categories: Iterable[CompiledCategory],
    record: CompiledKey,
    plan: CompiledPlan,
) -> KeyCounters:
    """Every counter ``record``'s requests charge that does not depend on the request."""
    charges: list[Charge] = []
    names: list[tuple[str, bool]] = []
    caps: list[tuple[str, str, int, bool]] = []
    seen: set[tuple[str, str]] = set()
    for category in categories:
        if category.exempt:
            continue
        charge_plan = charger.plan(category, record, plan)
        labels = iter(charge_plan.names)
        for _, by, fixed, _, shadow, specs, _ in charge_plan.rates:
            shared = _shared(by, record)
            for spec in specs:
                label = next(labels)
                if fixed is None or (spec.slot, fixed) in seen:
                    continue
                seen.add((spec.slot, fixed))
                charges.append((spec, fixed, 1, shadow))
                names.append((label, shared))
        for (_, by, fixed, cap, _), name in zip(
            charge_plan.leases, charge_plan.cap_names, strict=True
        ):
            if fixed is None or ("lease", fixed) in seen:
                continue
            seen.add(("lease", fixed))
            caps.append((name, fixed, cap, _shared(by, record)))
    return KeyCounters(record.id, plan.name, tuple(charges), tuple(names), tuple(caps))


def usage_of(
    counters: KeyCounters, results: Sequence[ChargeResult], in_use: Sequence[int]
) -> list[LimitUsage]:
    """``counters`` as the store read them: ``results`` of a peek, ``in_use`` of each cap."""
    usage = [
        LimitUsage(name, spec.limit, remaining, reset / _NS, spec.window_ns / _NS, shared, shadow)
        for (spec, _, _, shadow), (name, shared), (_, remaining, reset, _) in zip(
            counters.charges, counters.names, results, strict=True
        )
    ]
    usage.extend(
        LimitUsage(name, cap, max(cap - used, 0), None, None, shared)
        for (name, _, cap, shared), used in zip(counters.caps, in_use, strict=True)
    )
    return usage

"""From (category, caller) to the charges a store applies.

Which rate each limit of a category has for a caller (the key's override, its
plan's value, the limit's default) does not change between requests, so it is
worked out once per (category, key or plan) and kept as a :class:`ChargePlan`.
For a known key most counter keys are fixed too (``"scanner:api:demo-pro"``), so
a plain request reuses one prebuilt tuple of charges and allocates nothing.
Only parts that come from the request (client IP, node, headers, path
parameters) are joined per request.
"""

from __future__ import annotations

from .._memo import BoundedMemo
from ..algorithms import check_cost
from ..identity import BadRequestError, Identifier
from ..policy.compiler import CompiledCategory, CompiledCharge, CompiledKey, CompiledPlan
from ..stores.base import Charge, LimitSpec

__all__ = ["BadRequestError", "ChargePlan", "Charger"]

_MAX_CACHED = 65_536  # (category, caller) plans kept before the cache starts over
_REQUEST_PARTS = frozenset({"ip", "node"})

Owner = CompiledKey | CompiledPlan | None
# (prefix, by, fixed key or None, units per request, shadow, specs, IP key head or None)
RateItem = tuple[str, tuple[str, ...], str | None, int, bool, tuple[LimitSpec, ...], str | None]
# (prefix, by, fixed key or None, cap, ttl)
LeaseItem = tuple[str, tuple[str, ...], str | None, int, float]


class ChargePlan:
    """What one category charges one caller, with everything fixed worked out."""

    __slots__ = ("by_ip", "cap_names", "fixed", "leases", "names", "rates")

    def __init__(
        self,
        rates: tuple[RateItem, ...],
        names: tuple[str, ...],
        leases: tuple[LeaseItem, ...],
        cap_names: tuple[str, ...] = (),
    ) -> None:
        self.rates = rates
        self.names = names
        self.leases = leases
        #: the name of the concurrency limit of each lease
        self.cap_names = cap_names
        self.fixed: tuple[Charge, ...] | None = None
        if all(item[2] is not None for item in rates):
            self.fixed = tuple(
                (spec, item[2], item[3], item[4])  # type: ignore[misc]
                for item in rates
                for spec in item[5]
            )
        #: ``(key head, spec, units, shadow)`` when the plan is one rate counted by
        #: client IP alone, the commonest limit: its charge is one tuple to build
        self.by_ip: tuple[str, LimitSpec, int, bool] | None = None
        if len(rates) == 1:
            _, _, _, units, shadow, specs, ip_head = rates[0]
            if ip_head is not None and len(specs) == 1:
                self.by_ip = (ip_head, specs[0], units, shadow)


class Charger:
    """Builds charges and lease keys for requests of one compiled policy.

    What each key counts by is the caller's identity, written by ``identify``
    (:class:`ratekeeper.identity.Identifier`: the one home of identity).
    """

    def __init__(self, identify: Identifier) -> None:
        self.identify = identify
        self._plans: BoundedMemo[tuple[int, int], ChargePlan] = BoundedMemo(_MAX_CACHED)
        # the plans of callers with neither key nor plan, by category: one lookup
        self._ownerless: dict[CompiledCategory, ChargePlan] = {}

    def plan(
        self, category: CompiledCategory, record: CompiledKey | None, plan: CompiledPlan | None
    ) -> ChargePlan:
        """The (cached) charge plan of ``category`` for this caller."""
        owner: Owner = record if record is not None else plan
        if owner is None:
            found = self._ownerless.get(category)
            if found is None:
                found = self._ownerless[category] = self._resolve(category, None, None)
            return found
        cache_key = (id(category), id(owner))
        found = self._plans.answers.get(cache_key)
        if found is None:
            found = self._plans.keep(cache_key, self._resolve(category, record, plan))
        return found

    def _resolve(
        self, category: CompiledCategory, record: CompiledKey | None, plan: CompiledPlan | None
    ) -> ChargePlan:
        rates: list[RateItem] = []
        names: list[str] = []
        for charge in category.rate_charges:
            chosen = record.specs.get(charge.name) if record is not None else None
            if chosen is None and plan is not None:
                chosen = plan.specs.get(charge.name)
            if chosen is None:
                if charge.default_specs is None:
                    continue
                specs, labels = charge.default_specs, charge.default_labels
            else:
                specs, labels = chosen
            if not specs:
                continue  # unlimited
            fixed = self._fixed_key(charge, record, plan)
            # counted by client IP alone (the most common limit): the key is
            # head + ip + "}", joined without going through ``identity``
            ip_head = charge.prefix + "{" if charge.by == ("ip",) else None
            rates.append(
                (charge.prefix, charge.by, fixed, charge.cost, charge.shadow, specs, ip_head)
            )
            names.extend(labels)
        leases: list[LeaseItem] = []
        cap_names: list[str] = []
        for charge in category.concurrency:
            if record is not None and charge.name in record.caps:
                cap = record.caps[charge.name]
            elif plan is not None:
                cap = plan.caps.get(charge.name, charge.default_cap)
            else:
                cap = charge.default_cap
            if cap is not None:
                fixed = self._fixed_key(charge, record, plan)
                leases.append((charge.prefix, charge.by, fixed, cap, charge.ttl))
                cap_names.append(charge.name)
        return ChargePlan(tuple(rates), tuple(names), tuple(leases), tuple(cap_names))

    def _fixed_key(
        self, charge: CompiledCharge, record: CompiledKey | None, plan: CompiledPlan | None
    ) -> str | None:
        """The counter key when no part of it comes from the request, else ``None``."""
        for part in charge.by:
            if part in _REQUEST_PARTS or part.startswith(("header:", "path:")):
                return None
            if record is None and part in ("api_key", "user"):
                return None  # anonymous callers are told apart by IP or header
        return charge.prefix + self.identify.tag(charge.by, record, plan, "", {}, {})

    def charges(
        self,
        charge_plan: ChargePlan,
        record: CompiledKey | None,
        plan: CompiledPlan | None,
        ip: str,
        headers: dict[str, str],
        params: dict[str, str],
        cost: int,
    ) -> tuple[Charge, ...] | list[Charge]:
        """The store charges of one request.

        A ``cost`` other than 1 multiplies the units the policy charges (checked
        when it was loaded): past what an algorithm counts exactly it is a
        ``ValueError``, raised before the store is asked (algorithms/bounds.py).
        """
        if cost == 1:
            if charge_plan.fixed is not None:
                return charge_plan.fixed
            if charge_plan.by_ip is not None:
                head, spec, units, shadow = charge_plan.by_ip
                return ((spec, head + ip + "}", units, shadow),)
        charges: list[Charge] = []
        for prefix, by, fixed, units, shadow, specs, ip_head in charge_plan.rates:
            if fixed is not None:
                key = fixed
            elif ip_head is not None:
                key = ip_head + ip + "}"
            else:
                key = prefix + self.identify.tag(by, record, plan, ip, headers, params)
            units *= cost
            if cost != 1:
                for spec in specs:
                    try:
                        check_cost(spec.algorithm, units)
                    except ValueError as error:
                        raise ValueError(f"{prefix[:-1]}: {error}") from None
            for spec in specs:
                charges.append((spec, key, units, shadow))
        return charges

    def leases(
        self,
        charge_plan: ChargePlan,
        record: CompiledKey | None,
        plan: CompiledPlan | None,
        ip: str,
        headers: dict[str, str],
        params: dict[str, str],
    ) -> tuple[tuple[str, int, float], ...]:
        """``(lease key, cap, ttl)`` for each concurrency cap of the request."""
        return tuple(
            (fixed or prefix + self.identify.tag(by, record, plan, ip, headers, params), cap, ttl)
            for prefix, by, fixed, cap, ttl in charge_plan.leases
        )

"""The primitive face: "may ``key`` spend ``cost`` against these rates?".

>>> rl = RateLimiter(MemoryStore())
>>> d = rl.hit("user:1", "5/second;10/minute")
>>> d.allowed, d.limit, d.remaining
(True, 5, 4)

Every rate in the string is checked and charged in one atomic step: a hit
denied by any rate consumes from none. ``RateLimiter`` and ``AsyncRateLimiter``
share everything but the lines that call the store.

A single rate takes a fast path, and a key refused at cost 1 is remembered
until it could pass: until then every hit of cost 1 is refused without touching
the store (time alone frees room, and other hits only take more), which is
what keeps a limiter cheap under a flood of refused requests. The memory is
bounded, forgotten when the store is cleared, and not fed by a store answering
from a fallback while its backend is down.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._memo import BoundedMemo
from ..algorithms import ALGORITHMS, DEFAULT_ALGORITHM, check_cost, get_algorithm
from ..rates import NS_PER_SECOND as _NS
from ..rates import Rate, parse_rates
from ..stores.base import Charge, ChargeResult, LimitSpec, Store, StoreUnavailableError
from ._decisions import Decision, build_decision
from ._stepping import one_charge, one_charge_async

__all__ = ["AsyncRateLimiter", "RateLimiter", "RatesLike"]

RatesLike = str | Rate | Sequence[Rate]

_MAX_DENIED = 4096  # refused keys remembered per plan before the memory starts over
_MAX_PLANS = 10_000  # callers building rate strings per request: stay bounded
#: a cost every algorithm counts exactly; a larger one leaves the fast path, and
#: ``_charges`` checks it against the plan's own algorithms (algorithms/bounds.py)
_FAST_MAX_COST = min(algorithm.max_limit for algorithm in ALGORITHMS.values())


class _Plan:
    """Rates x algorithm, compiled once: the specs, and keys refused until a time."""

    __slots__ = ("_denied", "denied", "max_cost", "single", "specs")

    def __init__(self, specs: tuple[LimitSpec, ...]) -> None:
        self.specs = specs
        self.single = specs[0] if len(specs) == 1 else None
        #: the largest cost every rate of the plan counts exactly (``None``: unlimited)
        self.max_cost = min((spec.algorithm.max_limit for spec in specs), default=None)
        # key -> refused until (ns); single-rate plans only. ``denied`` is the memo's
        # dict, read directly on every hit
        self._denied: BoundedMemo[str, int] = BoundedMemo(_MAX_DENIED)
        self.denied = self._denied.answers


class _RateLimiterCore:
    """Plans, the checks on arguments, and the decisions built from store results."""

    def __init__(self, store: Store, *, algorithm: str = DEFAULT_ALGORITHM) -> None:
        get_algorithm(algorithm)
        self.store = store
        #: one enforced charge: the store's lean path when it has one (not a duty of stores)
        self._apply_one = one_charge(store)
        self._apply_one_async = one_charge_async(store)
        self.algorithm = algorithm
        # algorithm -> rates as given -> plan
        self._plans: dict[str, BoundedMemo[object, _Plan]] = {algorithm: BoundedMemo(_MAX_PLANS)}
        self._default_plans = self._plans[algorithm].answers
        self._generation = store.generation

    def _fast_plan(
        self, key: str, rates: RatesLike, cost: int, algorithm: str | None
    ) -> _Plan | None:
        """The plan of a valid single-rate call already compiled, else ``None``.

        Most calls repeat a rate string already seen; anything else (a first
        call, several rates, bad arguments) goes the full way.
        """
        if key.__class__ is not str or cost.__class__ is not int or not 0 < cost <= _FAST_MAX_COST:
            return None
        if algorithm is None:
            plans = self._default_plans
        else:
            memo = self._plans.get(algorithm)
            if memo is None:
                return None
            plans = memo.answers
        try:
            plan = plans.get(rates)
        except TypeError:  # a list of rates: unhashable
            return None
        if plan is None or plan.single is None:
            return None
        if self._generation != self.store.generation:  # the store forgot everything
            self._forget_denials()
        return plan

    def _still_denied(self, plan: _Plan, key: str) -> Decision | None:
        """The refusal of a hit of cost 1 on a key known to be over its limit, while it is.

        Only cost 1: a larger hit may need longer, and its answer must say so.
        """
        until = plan.denied.get(key)
        if until is None:
            return None
        now = self.store.now_ns()
        if now >= until:
            del plan.denied[key]
            return None
        spec = plan.single
        assert spec is not None
        retry = until - now
        return Decision(
            False, spec.limit, 0, until / _NS, retry / _NS,
            ((spec, key, 1, False),), ((False, 0, until, retry),),
        )  # fmt: skip

    def _single_decision(self, plan: _Plan, key: str, cost: int, result: ChargeResult) -> Decision:
        allowed, remaining, reset, retry = result
        spec = plan.single
        assert spec is not None
        if not allowed and cost == 1 and not self.store.degraded:
            plan._denied.keep(key, reset)
        return Decision(
            allowed, spec.limit, remaining, reset / _NS, retry / _NS,
            ((spec, key, cost, False),), (result,),
        )  # fmt: skip

    def _unavailable(self, charges: list[Charge]) -> Decision:
        """The refusal when the store cannot decide and fails closed: try again in 1 s."""
        until = self.store.now_ns() + _NS
        results = [(False, 0, until, _NS) for _ in charges]
        return build_decision(False, charges, results, self.store.now_ns)

    def _forget_denials(self) -> None:
        for plans in self._plans.values():
            for plan in plans.answers.values():
                plan.denied.clear()
        self._generation = self.store.generation

    def _charges(
        self, key: str, rates: RatesLike, cost: int, algorithm: str | None
    ) -> list[Charge]:
        if type(cost) is not int or cost < 1:
            raise ValueError(f"cost must be a positive integer, got {cost!r}")
        if rates.__class__ is list:
            rates = tuple(rates)
        name = self.algorithm if algorithm is None else algorithm
        plans = self._plans.get(name)
        plan = plans.answers.get(rates) if plans is not None else None
        if plan is None:
            plan = self._compile(rates, name)
        if plan.max_cost is not None and cost > plan.max_cost:
            for spec in plan.specs:
                check_cost(spec.algorithm, cost)  # raises, naming the algorithm
        if type(key) is not str:
            raise TypeError(f"key must be a string, got {type(key).__name__}")
        return [(spec, key, cost, False) for spec in plan.specs]

    def _compile(self, rates: RatesLike, algorithm_name: str) -> _Plan:
        algorithm = get_algorithm(algorithm_name)
        if isinstance(rates, str):
            parsed = parse_rates(rates)
        elif isinstance(rates, Rate):
            parsed = (rates,)
        elif isinstance(rates, (list, tuple)):
            parsed = tuple(rates)
            if not all(isinstance(rate, Rate) for rate in parsed):
                raise TypeError("rates must be a rate string, a Rate or a sequence of Rate")
            windows = [rate.window_ns for rate in parsed]
            if len(set(windows)) != len(windows):
                raise ValueError("two rates share one window; they would share one counter")
        else:
            raise TypeError(
                "rates must be a rate string, a Rate or a sequence of Rate, "
                f"got {type(rates).__name__}"
            )
        plan = _Plan(tuple(LimitSpec.of(algorithm, rate) for rate in parsed))
        plans = self._plans.get(algorithm_name)
        if plans is None:
            plans = self._plans[algorithm_name] = BoundedMemo(_MAX_PLANS)
        return plans.keep(rates, plan)


class RateLimiter(_RateLimiterCore):
    """Check and charge keys against rates, synchronously.

    ``algorithm`` is the default for calls that do not name one:
    ``sliding_window``, ``sliding_log``, ``token_bucket`` or ``fixed_window``.
    A rate or a cost past what the algorithm counts exactly on every store
    (docs/algorithms.md, "Bounds") raises ``ValueError`` before anything is
    counted, whatever the store.
    """

    def hit(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Charge ``cost`` to ``key`` against every rate, or to none if any is full.

        ``key`` is any ``str``; one that is not valid text (``"\\ud800"``) is a
        counter of its own like any other, in every store.
        """
        plan = self._fast_plan(key, rates, cost, algorithm)
        if plan is not None:
            refused = self._still_denied(plan, key) if cost == 1 and plan.denied else None
            if refused is not None:
                return refused
            try:
                result = self._apply_one(plan.single, key, cost)  # type: ignore[arg-type]
            except StoreUnavailableError:
                return self._unavailable([(plan.single, key, cost, False)])  # type: ignore[list-item]
            return self._single_decision(plan, key, cost, result)
        charges = self._charges(key, rates, cost, algorithm)
        try:
            admitted, results = self.store.apply(charges)
        except StoreUnavailableError:
            return self._unavailable(charges)
        return build_decision(admitted, charges, results, self.store.now_ns)

    def peek(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Whether a hit of ``cost`` would pass now; consumes nothing.

        ``remaining`` is the quota left now.
        """
        charges = self._charges(key, rates, cost, algorithm)
        try:
            admitted, results = self.store.apply(charges, consume=False)
        except StoreUnavailableError:
            return self._unavailable(charges)
        return build_decision(admitted, charges, results, self.store.now_ns)


class AsyncRateLimiter(_RateLimiterCore):
    """The asyncio twin of :class:`RateLimiter`."""

    async def hit(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Charge ``cost`` to ``key`` against every rate, or to none if any is full."""
        plan = self._fast_plan(key, rates, cost, algorithm)
        if plan is not None:
            refused = self._still_denied(plan, key) if cost == 1 and plan.denied else None
            if refused is not None:
                return refused
            try:
                result = await self._apply_one_async(plan.single, key, cost)  # type: ignore[arg-type]
            except StoreUnavailableError:
                return self._unavailable([(plan.single, key, cost, False)])  # type: ignore[list-item]
            return self._single_decision(plan, key, cost, result)
        charges = self._charges(key, rates, cost, algorithm)
        try:
            admitted, results = await self.store.apply_async(charges)
        except StoreUnavailableError:
            return self._unavailable(charges)
        return build_decision(admitted, charges, results, self.store.now_ns)

    async def peek(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Whether a hit of ``cost`` would pass now; consumes nothing."""
        charges = self._charges(key, rates, cost, algorithm)
        try:
            admitted, results = await self.store.apply_async(charges, consume=False)
        except StoreUnavailableError:
            return self._unavailable(charges)
        return build_decision(admitted, charges, results, self.store.now_ns)

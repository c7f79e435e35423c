"""The primitive face: "may ``key`` spend ``cost`` against these rates?".

>>> rl = RateLimiter(MemoryStore())
>>> d = rl.hit("user:1", "5/second;10/minute")
>>> d.allowed, d.limit, d.remaining
(True, 5, 4)

Every rate in the string is checked and charged in one atomic step: a hit
denied by any rate consumes from none. ``RateLimiter`` and ``AsyncRateLimiter``
share everything but the one line that calls the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from .algorithms import DEFAULT_ALGORITHM, get_algorithm
from .decision import Decision, build_decision, single_decision
from .rates import Rate, parse_rates
from .stores.base import Charge, LimitSpec, Store

__all__ = ["AsyncRateLimiter", "RateLimiter"]

RatesLike = str | Rate | Sequence[Rate]


class _RateLimiterCore:
    """Plans (rates x algorithm, compiled once) and the checks on arguments."""

    def __init__(self, store: Store, *, algorithm: str = DEFAULT_ALGORITHM) -> None:
        get_algorithm(algorithm)
        self.store = store
        self.algorithm = algorithm
        self._plans: dict[str, dict[object, tuple[LimitSpec, ...]]] = {algorithm: {}}
        self._default_plans = self._plans[algorithm]

    def _single(
        self, key: str, rates: RatesLike, cost: int, algorithm: str | None
    ) -> tuple[Charge] | None:
        """The one charge of a valid single-rate call already planned, else ``None``.

        The fast path: most calls repeat a rate string already seen; anything
        else (a first call, several rates, bad arguments) goes the full way.
        """
        if key.__class__ is not str or cost.__class__ is not int or cost < 1:
            return None
        plans = self._default_plans if algorithm is None else self._plans.get(algorithm)
        if plans is None:
            return None
        try:
            plan = plans.get(rates)
        except TypeError:  # a list of rates: unhashable
            return None
        if plan is None or len(plan) != 1:
            return None
        return ((plan[0], key, cost, False),)

    def _charges(
        self, key: str, rates: RatesLike, cost: int, algorithm: str | None
    ) -> list[Charge]:
        if type(cost) is not int or cost < 1:
            raise ValueError(f"cost must be a positive integer, got {cost!r}")
        if rates.__class__ is list:
            rates = tuple(rates)
        name = self.algorithm if algorithm is None else algorithm
        plans = self._plans.get(name)
        plan = plans.get(rates) if plans is not None else None
        if plan is None:
            plan = self._compile(rates, name)
        if type(key) is not str:
            raise TypeError(f"key must be a string, got {type(key).__name__}")
        return [(spec, key, cost, False) for spec in plan]

    def _compile(self, rates: RatesLike, algorithm_name: str) -> tuple[LimitSpec, ...]:
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
        plan = tuple(LimitSpec.of(algorithm, rate) for rate in parsed)
        plans = self._plans.setdefault(algorithm_name, {})
        if len(plans) >= 10_000:  # callers building rate strings per request: stay bounded
            plans.clear()
        plans[rates] = plan
        return plan


class RateLimiter(_RateLimiterCore):
    """Check and charge keys against rates, synchronously.

    ``algorithm`` is the default for calls that do not name one:
    ``sliding_window``, ``sliding_log``, ``token_bucket`` or ``fixed_window``.
    """

    def hit(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Charge ``cost`` to ``key`` against every rate, or to none if any is full."""
        single = self._single(key, rates, cost, algorithm)
        if single is not None:
            admitted, results = self.store.apply(single)
            return single_decision(admitted, single, results)
        charges = self._charges(key, rates, cost, algorithm)
        admitted, results = self.store.apply(charges)
        return build_decision(admitted, charges, results, self.store.now_ns)

    def peek(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Whether a hit of ``cost`` would pass now; consumes nothing.

        ``remaining`` is the quota left now.
        """
        charges = self._charges(key, rates, cost, algorithm)
        admitted, results = self.store.apply(charges, consume=False)
        return build_decision(admitted, charges, results, self.store.now_ns)


class AsyncRateLimiter(_RateLimiterCore):
    """The asyncio twin of :class:`RateLimiter`."""

    async def hit(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Charge ``cost`` to ``key`` against every rate, or to none if any is full."""
        single = self._single(key, rates, cost, algorithm)
        if single is not None:
            admitted, results = await self.store.apply_async(single)
            return single_decision(admitted, single, results)
        charges = self._charges(key, rates, cost, algorithm)
        admitted, results = await self.store.apply_async(charges)
        return build_decision(admitted, charges, results, self.store.now_ns)

    async def peek(
        self, key: str, rates: RatesLike, cost: int = 1, algorithm: str | None = None
    ) -> Decision:
        """Whether a hit of ``cost`` would pass now; consumes nothing."""
        charges = self._charges(key, rates, cost, algorithm)
        admitted, results = await self.store.apply_async(charges, consume=False)
        return build_decision(admitted, charges, results, self.store.now_ns)

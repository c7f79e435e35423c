"""Prometheus metrics of one service: the decision hook's adapter and the store's state.

Each service has its own :class:`~prometheus_client.CollectorRegistry` (two
services in one process, as in the tests, count apart). Labels are the
policy's plan and category names and the engine's outcome: a bounded set.
Never a key id, a client address or a path: one series per caller would grow
without bound.

==================================  =========  ======================================
name                                type       what
==================================  =========  ======================================
ratekeeper_decisions_total          counter    decisions by ``plan``, ``category``,
                                               ``outcome`` (``""`` when there is none)
ratekeeper_decision_seconds         histogram  time to decide, store call included
ratekeeper_store_degraded           gauge      1 while the store answers from its
                                               fallback (Redis failing)
ratekeeper_store_errors_total       counter    failed store calls (Redis only)
ratekeeper_policy_reloads_total     counter    reloads by ``outcome``: applied, refused
==================================  =========  ======================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..engine import DecisionEvent
from ..stores import Store

__all__ = ["DecisionMetrics", "ServiceMetrics", "StoreCollector"]

#: decisions take microseconds in memory, a round trip on Redis
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class DecisionMetrics:
    """A :class:`~ratekeeper.engine.DecisionHook`: counts each decision and times it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._decisions = Counter(
            "ratekeeper_decisions",
            "Decisions, by plan, category and outcome.",
            ("plan", "category", "outcome"),
            registry=registry,
        )
        self._seconds = Histogram(
            "ratekeeper_decision_seconds",
            "Time to decide one request, store call included.",
            buckets=_BUCKETS,
            registry=registry,
        )
        self._observe = self._seconds.observe
        # (plan, category, outcome) -> its counter's ``inc``: labels() once per series
        self._series: dict[tuple[str | None, str | None, str], Callable[[float], None]] = {}

    def __call__(self, event: DecisionEvent) -> None:
        labels = (event.plan, event.category, event.outcome)
        inc = self._series.get(labels)
        if inc is None:
            inc = self._series[labels] = self._decisions.labels(
                event.plan or "", event.category or "", event.outcome
            ).inc
        inc(1)
        self._observe(event.seconds)


class StoreCollector(Collector):
    """The store's state, read when scraped: degraded, and its failed calls when it counts them."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        store = self._store()
        yield GaugeMetricFamily(
            "ratekeeper_store_degraded",
            "1 while the store answers from its fallback (failing open or local).",
            value=1 if store.degraded else 0,
        )
        errors = getattr(store, "errors", None)
        if isinstance(errors, int):
            yield CounterMetricFamily(
                "ratekeeper_store_errors", "Failed calls to the store.", value=errors
            )


class ServiceMetrics:
    """The registry of one service, its decision hook and its reload counter."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self.registry = CollectorRegistry()
        #: the hook every limiter of the service is built with
        self.hook = DecisionMetrics(self.registry)
        self._reloads = Counter(
            "ratekeeper_policy_reloads",
            "Policy reloads, by outcome: applied or refused.",
            ("outcome",),
            registry=self.registry,
        )
        self.registry.register(StoreCollector(store))

    def reloaded(self, applied: bool) -> None:
        self._reloads.labels("applied" if applied else "refused").inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

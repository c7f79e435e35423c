"""Prometheus metrics of a limiter: the decision hook's adapter and the store's state.

One :class:`RateLimitMetrics` per limiter (the service's, a middleware's),
each on its own :class:`~prometheus_client.CollectorRegistry` unless given
one (two in one process count apart). Labels are the policy's plan and
category names and the outcome word (``allowed``, ``rate``, ``cap``,
``block``, ``unknown_key``, ``unavailable``, ``bad_request``): a bounded
set. Never a key id, a client address or a path: one series per caller
would grow without bound.

========================================  =========  ====================================
name                                      type       what
========================================  =========  ====================================
ratekeeper_decisions_total                counter    decisions by ``plan``, ``category``,
                                                     ``outcome`` (``""``: none known)
ratekeeper_decision_seconds               histogram  time to decide, store call included
ratekeeper_store_degraded                 gauge      1 while the store answers from its
                                                     fallback (Redis failing)
ratekeeper_store_errors_total             counter    failed store calls (Redis only)
ratekeeper_active_blocks                  gauge      lockout and penalty blocks in force
ratekeeper_memory_store_keys              gauge      keys a memory store tracks (memory only)
ratekeeper_memory_store_evictions_total   counter    live keys it evicted to stay in bounds
========================================  =========  ====================================

The store's numbers are read when scraped (``StoreCollector``): nothing is
added to the decision path for them. ``RateLimitMetrics.app`` is a plain
ASGI app answering the text format, to mount where the app wants it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..engine import DecisionEvent
from ..stores import Store, StoreUnavailableError
from ._words import outcome_word

__all__ = ["DecisionMetrics", "RateLimitMetrics", "StoreCollector"]

_log = logging.getLogger("ratekeeper.analytics")

#: decisions take microseconds in memory, a round trip on Redis
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class DecisionMetrics(Collector):
    """A :class:`~ratekeeper.engine.DecisionHook`: counts each decision and times it.

    On the decision's path it only adds to plain numbers under a lock held
    for a few additions; the Prometheus families are made from them when
    scraped (it is the collector of ``ratekeeper_decisions_total`` and
    ``ratekeeper_decision_seconds``). ``prometheus_client``'s own ``Counter``
    and ``Histogram`` cost 1 us per decision together: twice this.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        #: (plan, category, engine outcome, allowed) -> decisions
        self._decisions: dict[tuple[str | None, str | None, str, bool], int] = {}
        #: decisions per histogram bucket (the last: over every bound), and their sum
        self._buckets = [0] * (len(_BUCKETS) + 1)
        self._seconds = 0.0
        registry.register(self)

    def __call__(self, event: DecisionEvent) -> None:
        labels = (event.plan, event.category, event.outcome, event.allowed)
        seconds = event.seconds
        bucket = bisect_left(_BUCKETS, seconds)
        with self._lock:
            decisions = self._decisions
            decisions[labels] = decisions.get(labels, 0) + 1
            self._buckets[bucket] += 1
            self._seconds += seconds

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            decisions = dict(self._decisions)
            buckets, total = list(self._buckets), self._seconds
        family = CounterMetricFamily(
            "ratekeeper_decisions",
            "Decisions, by plan, category and outcome.",
            labels=("plan", "category", "outcome"),
        )
        by_word: dict[tuple[str, str, str], int] = {}
        for (plan, category, outcome, allowed), count in decisions.items():
            labels = (plan or "", category or "", outcome_word(outcome, allowed))
            by_word[labels] = by_word.get(labels, 0) + count
        for labels, count in sorted(by_word.items()):
            family.add_metric(list(labels), count)
        yield family
        cumulative, running = [], 0
        for bound, count in zip((*_BUCKETS, math.inf), buckets, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == math.inf else repr(bound), running))
        yield HistogramMetricFamily(
            "ratekeeper_decision_seconds",
            "Time to decide one request, store call included.",
            buckets=cumulative,
            sum_value=total,
        )

    def describe(self) -> Iterator[Metric]:
        """Nothing to describe ahead: the registry calls ``collect`` to learn the names."""
        return iter(())


class StoreCollector(Collector):
    """The store's state, read when scraped: degraded, failed calls, blocks, memory keys."""

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
        try:
            blocks = len(store.lockouts.blocks())
        except StoreUnavailableError:
            blocks = None
        except Exception:  # a scrape answers, whatever went wrong
            _log.exception("could not count the store's blocks")
            blocks = None
        if blocks is not None:
            yield GaugeMetricFamily(
                "ratekeeper_active_blocks",
                "Lockout and penalty blocks in force now.",
                value=blocks,
            )
        stats = getattr(store, "stats", None)
        if callable(stats):
            numbers = stats()
            yield GaugeMetricFamily(
                "ratekeeper_memory_store_keys",
                "Keys the memory store tracks now.",
                value=numbers.keys,
            )
            yield CounterMetricFamily(
                "ratekeeper_memory_store_evictions",
                "Live keys the memory store evicted to stay within max_keys.",
                value=numbers.evictions,
            )


Scope = MutableMapping[str, Any]


class RateLimitMetrics:
    """The Prometheus metrics of one limiter: its decision hook and its store's state.

    ``registry``: the :class:`~prometheus_client.CollectorRegistry` to register in
    (a new one by default; pass ``prometheus_client.REGISTRY`` to join an app's
    other metrics). :meth:`watch` says which store to read at scrape time (the
    service and the middleware call it); :attr:`hook` is given to the limiter.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        #: the :class:`~ratekeeper.engine.DecisionHook` the limiter is built with
        self.hook = DecisionMetrics(self.registry)
        self._watching = False

    def watch(self, store: Callable[[], Store]) -> None:
        """Read ``store()``'s state at each scrape (once per metrics object)."""
        if self._watching:
            raise ValueError("these metrics already watch a store: one limiter per metrics object")
        self._watching = True
        self.registry.register(StoreCollector(store))

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        """A plain ASGI app answering ``GET`` with :meth:`exposition` (mount it at ``/metrics``).

        The store is read in a thread: counting a Redis store's blocks scans its keys.
        """
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": 405, "headers": headers})
            await send({"type": "http.response.body", "body": b"GET only\n"})
            return
        body = await asyncio.to_thread(self.exposition)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode("latin-1"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

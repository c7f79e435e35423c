"""Prometheus metrics of one service: the limiter's (``ratekeeper.analytics.prometheus``)
and its policy reloads.

Each service has its own :class:`~prometheus_client.CollectorRegistry` (two
services in one process, as in the tests, count apart). Besides what every
limiter's metrics have (docs/analytics.md: decisions by plan, category and
outcome word, decision time, the store's state, active blocks, memory keys and
evictions), the service counts:

==================================  =========  ======================================
name                                type       what
==================================  =========  ======================================
ratekeeper_policy_reloads_total     counter    reloads by ``outcome``: applied, refused
ratekeeper_envoy_rule_hits_total    counter    Envoy descriptor hits by ``rule`` (the
                                               reference service's stats key, values
                                               written in the config only) and ``stat``:
                                               total_hits, within_limit, near_limit,
                                               over_limit, shadow_mode
==================================  =========  ======================================
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

from ..analytics.prometheus import DecisionMetrics, RateLimitMetrics, StoreCollector
from ..stores import Store

__all__ = ["DecisionMetrics", "ServiceMetrics", "StoreCollector"]


class ServiceMetrics(RateLimitMetrics):
    """The registry of one service, its decision hook, its store's state, its reloads."""

    def __init__(self, store: Callable[[], Store]) -> None:
        super().__init__()
        self._reloads = Counter(
            "ratekeeper_policy_reloads",
            "Policy reloads, by outcome: applied or refused.",
            ("outcome",),
            registry=self.registry,
        )
        self._rule_hits = Counter(
            "ratekeeper_envoy_rule_hits",
            "Envoy descriptor hits by rule and stat, as the reference service counts them.",
            ("rule", "stat"),
            registry=self.registry,
        )
        self.watch(store)

    def rule_hits(self, rule: str, stat: str, hits: int) -> None:
        """``hits`` hits of the Envoy rule ``rule`` counted under ``stat``."""
        self._rule_hits.labels(rule, stat).inc(hits)

    def reloaded(self, applied: bool) -> None:
        self._reloads.labels("applied" if applied else "refused").inc()

"""Prometheus metrics for an app's middleware: the same metrics ``ratekeeper serve`` exposes.

    from ratekeeper.integrations.asgi import RateLimitMiddleware
    from ratekeeper.integrations.metrics import RateLimitMetrics

    metrics = RateLimitMetrics()          # or RateLimitMetrics(prometheus_client.REGISTRY)
    app.add_middleware(RateLimitMiddleware, policy="policy.yaml", metrics=metrics)
    app.mount("/metrics", metrics.app)    # a plain ASGI app: the text format

``ratekeeper_decisions_total{plan,category,outcome}``, ``ratekeeper_decision_seconds``,
the store's state (degraded, errors, active blocks, memory keys and evictions):
docs/analytics.md. Needs ``prometheus_client`` (the server extra).
"""

from __future__ import annotations

from ..analytics.prometheus import RateLimitMetrics

__all__ = ["RateLimitMetrics"]

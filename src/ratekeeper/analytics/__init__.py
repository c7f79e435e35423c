"""Usage analytics and metrics: adapters of the engine's decision hook.

The engine tells every decision to its hooks (:class:`ratekeeper.engine.DecisionEvent`);
here are the adapters the service and the middleware plug in:

``_words``       the seven outcome words charts and labels use (bounded)
``_recorder``    :class:`UsageRecorder`: counts per minute, key and category in memory,
                 flushed every second into the registry; audit rows of blocks and
                 store outages; a per-second ring of this process's recent decisions
``prometheus``   Prometheus adapters (``ratekeeper_decisions_total`` and the store's
                 state); imported on its own, so ``prometheus_client`` loads only there

See docs/analytics.md.
"""

from __future__ import annotations

from ._recorder import UsageRecorder
from ._words import OUTCOME_WORDS, outcome_word

__all__ = ["OUTCOME_WORDS", "UsageRecorder", "outcome_word"]

"""The service's usage analytics: :class:`UsageRecorder`, the decision hook that counts.

Written once in :mod:`ratekeeper.analytics` (the middleware records the same
way when given a registry); here under the name the service and its
dashboard use. The service makes one when it has a registry
(``service.recorder``), starts its flushing thread with the service and
flushes the rest when it closes (SIGTERM included). docs/analytics.md.
"""

from __future__ import annotations

from ..analytics import OUTCOME_WORDS, UsageRecorder, outcome_word

__all__ = ["OUTCOME_WORDS", "UsageRecorder", "outcome_word"]

"""What a middleware tells of its decisions: Prometheus metrics and usage analytics.

Both middleware (ASGI and WSGI) take the same two options, off unless asked
for (docs/analytics.md): ``metrics=RateLimitMetrics()`` counts every
decision and reads the store at scrape time; ``usage_registry=`` (a registry
URL or an open :class:`~ratekeeper.registry.Registry`) counts every decision
per minute, key and category into that registry, as ``ratekeeper serve``
does, flushed every second by the recorder's own thread and at
:meth:`Observing.close` (the ASGI app's lifespan shutdown, or interpreter
exit). :class:`Observing` holds the hooks the middleware's limiter is built
with, then :meth:`Observing.bind` tells it which limiter decides.
"""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING

from ..engine import LimiterCore
from ..limiter import AsyncLimiter, Limiter
from ..stores.base import Store

if TYPE_CHECKING:
    from ..analytics import UsageRecorder
    from ..analytics.prometheus import RateLimitMetrics
    from ..engine import BlockHook, DecisionHook
    from ..registry import Registry

__all__ = ["Observing"]


class Observing:
    """The decision hooks of ``metrics`` and ``usage_registry``, for a middleware's limiter.

    ``store``/``limiter``: what the middleware was given, so that the usage
    recorder counts minutes on the store's clock from the start.
    """

    def __init__(
        self,
        metrics: RateLimitMetrics | None,
        usage_registry: str | Registry | None,
        store: Store | None,
        limiter: AsyncLimiter | Limiter | None,
    ) -> None:
        self.metrics = metrics
        self.hooks: list[DecisionHook] = []
        self.block_hooks: list[BlockHook] = []
        self._decided_by: LimiterCore | None = None
        if metrics is not None:
            self.hooks.append(metrics.hook)
        #: counts decisions into ``usage_registry`` (``None``: analytics off, or closed)
        self.recorder: UsageRecorder | None = None
        self._owned_registry: Registry | None = None
        if usage_registry is not None:
            self.recorder = self._recorder(usage_registry, store, limiter)
            self.hooks.append(self.recorder)
            self.block_hooks.append(self.recorder.block_hook)

    def bind(self, decided_by: LimiterCore) -> None:
        """The limiter the middleware decides with, built with :attr:`hooks`."""
        self._decided_by = decided_by
        if self.metrics is not None:
            self.metrics.watch(lambda: decided_by.store)

    def _recorder(
        self, usage_registry: str | Registry, store: Store | None, limiter: LimiterCore | None
    ) -> UsageRecorder:
        """The usage recorder of ``usage_registry``, its thread started, closed at exit."""
        from ..analytics import UsageRecorder
        from ..registry import Registry

        registry = usage_registry
        if isinstance(registry, str):
            registry = self._owned_registry = Registry.open(registry)
        decided = limiter.store if limiter is not None else store
        if decided is None:  # the limiter makes its own memory store: read its clock later
            recorder = UsageRecorder(registry, clock=self._limiter_clock)
        else:
            recorder = UsageRecorder(registry, clock=lambda: decided.now_ns() / 1e9)
        watch = getattr(getattr(decided, "outage", None), "watch", None)
        if watch is not None:
            watch(recorder.store_watcher)
        recorder.start()
        atexit.register(self.close)
        return recorder

    def _limiter_clock(self) -> float:
        decided_by = self._decided_by
        assert decided_by is not None, "bind() the middleware's limiter first"
        return decided_by.store.now_ns() / 1e9

    def close(self) -> None:
        """Flush the usage counts and close the registry opened here (if any); again: nothing."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()
            atexit.unregister(self.close)
        registry, self._owned_registry = self._owned_registry, None
        if registry is not None:
            registry.close()

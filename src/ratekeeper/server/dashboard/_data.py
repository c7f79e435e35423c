"""What the dashboard reads of the running service, in one place.

:class:`DashboardService` is what the pages need of
:class:`ratekeeper.server.service.Service`: the admin token, the policy and
limiter in force, the store, the registry. Usage analytics (per-second
counts of this process, per-minute series and top keys of the registry)
are read through :class:`Analytics`, so a test gives the pages fixed
numbers, and :class:`ServiceAnalytics` reads them from the service: its
``recorder`` (``ratekeeper.server.analytics.UsageRecorder``) and its
registry's ``usage_series`` / ``top_keys``.

Each method of :class:`Analytics` answers ``None`` when there are no
analytics to read (a service without a registry counts nothing): the page
says so instead of drawing an empty chart that looks like no traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ...analytics import UsageRecorder
from ...limiter import AsyncLimiter
from ...policy import Policy
from ...registry import Registry
from ...stores import Store

__all__ = ["Analytics", "DashboardService", "Point", "ServiceAnalytics"]


class DashboardService(Protocol):
    """What the dashboard needs of the running service (``server.service.Service``)."""

    admin_token: str | None
    policy: Policy
    limiter: AsyncLimiter
    store: Store
    registry: Registry | None
    #: usage analytics of this process; ``None`` without a registry (nothing counted)
    recorder: UsageRecorder | None

    async def ping(self) -> bool: ...


class Point(Protocol):
    """One period of a usage series (``ratekeeper.registry.UsagePoint``)."""

    @property
    def at(self) -> datetime: ...
    @property
    def allowed(self) -> int: ...
    @property
    def refused_rate(self) -> int: ...
    @property
    def refused_cap(self) -> int: ...
    @property
    def refused_block(self) -> int: ...
    @property
    def refused_unknown_key(self) -> int: ...
    @property
    def refused_other(self) -> int: ...
    @property
    def cost(self) -> int: ...
    @property
    def refused(self) -> int: ...


class Analytics(Protocol):
    """Usage analytics as the dashboard reads them; ``None``: there are none."""

    def recent(self, seconds: int) -> list[tuple[int, int, int]] | None:
        """``(epoch second, allowed, refused)`` of this process, oldest first."""

    def usage_series(
        self, *, key: str, start: datetime, end: datetime, step: str
    ) -> Sequence[Point] | None:
        """The periods of ``key``'s usage from ``start`` to ``end``, summed over categories."""

    def top_keys(self, *, by: str, since: datetime, limit: int) -> list[tuple[str, int]] | None:
        """The keys with the most requests (``by="requests"``) or refusals since ``since``."""


class ServiceAnalytics:
    """:class:`Analytics` of a running service: its recorder's and its registry's numbers.

    A service without a registry counts nothing (``recorder`` is ``None``):
    its pages say "no analytics" rather than draw an empty chart.
    """

    def __init__(self, service: DashboardService) -> None:
        self.service = service

    def recent(self, seconds: int) -> list[tuple[int, int, int]] | None:
        recorder = self.service.recorder
        return None if recorder is None else recorder.recent(seconds)

    def usage_series(
        self, *, key: str, start: datetime, end: datetime, step: str
    ) -> Sequence[Point] | None:
        registry = self.service.registry
        if registry is None:
            return None
        return registry.usage_series(key=key, start=start, end=end, step=step)

    def top_keys(self, *, by: str, since: datetime, limit: int) -> list[tuple[str, int]] | None:
        registry = self.service.registry
        if registry is None:
            return None
        return registry.top_keys(by=by, since=since, limit=limit)

"""Fixtures of the dashboard tests: see ``dashboard_support``."""

from __future__ import annotations

from dashboard_support import analytics, client, clock, registry, service

__all__ = ["analytics", "client", "clock", "registry", "service"]

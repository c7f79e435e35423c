"""Fixtures of the admin API tests: see ``admin_support``."""

from __future__ import annotations

from admin_support import client, clock, policy_path, registry, service

__all__ = ["client", "clock", "policy_path", "registry", "service"]

"""The policy-driven limiters, as users import them: ``from ratekeeper.limiter import Limiter``.

The engine (:mod:`ratekeeper.engine`) defines them; this module is their
public address.
"""

from __future__ import annotations

from .engine import AsyncLimiter, Limiter, PolicyDecision

__all__ = ["AsyncLimiter", "Limiter", "PolicyDecision"]

"""Counters, leases and lockouts in Redis or Valkey: standalone, Sentinel or Cluster.

The package's rooms: ``store.py`` (:class:`RedisStore`, the Store protocol on
Redis), ``tables.py`` (its leases and lockouts), ``batching.py`` (decisions
that arrive together share one script call), ``scripts.py`` and ``lua/`` (the
scripts), ``keys.py`` (key names and hash tags), ``outage.py`` (what a failure
does). redis-py is imported only when a store is built from a URL.
"""

from __future__ import annotations

from ..base import StoreUnavailableError
from .keys import key_slot, key_tag
from .store import RedisStore

__all__ = ["RedisStore", "StoreUnavailableError", "key_slot", "key_tag"]

"""The client SDK: consume rate-limited APIs politely (docs/client.md).

::

    import httpx
    from ratekeeper.client import RetryTransport

    client = httpx.Client(transport=RetryTransport())

``RetryTransport`` / ``AsyncRetryTransport`` (httpx) and ``RetryAdapter``
(requests) wait as the server says (``Retry-After``, the IETF ``RateLimit``
fields, ``RateLimit-Reset``, ``X-RateLimit-Reset``; else exponential backoff
with full jitter), retry 429s and idempotent 503s, pace a spent quota until its
reset, and give up with :class:`RetryError`. One I/O-free core
(``_core.retry_flow``) decides for all three. The client imports nothing of
the rest of ratekeeper: an API's consumers need no engine.

httpx and requests are imported when a transport or the adapter is first
asked for (``pip install 'ratekeeper[client]'`` brings both).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ratekeeper.client._core import RetryError, RetryPolicy, WaitEvent, WaitHook
from ratekeeper.client._fields import Advice, Quota, read_advice
from ratekeeper.client._pacing import Pacer

if TYPE_CHECKING:
    from ratekeeper.client._httpx import AsyncRetryTransport, RetryTransport
    from ratekeeper.client._requests import RetryAdapter

__all__ = [
    "Advice",
    "AsyncRetryTransport",
    "Pacer",
    "Quota",
    "RetryAdapter",
    "RetryError",
    "RetryPolicy",
    "RetryTransport",
    "WaitEvent",
    "WaitHook",
    "read_advice",
]

_LAZY = {
    "AsyncRetryTransport": "ratekeeper.client._httpx",
    "RetryTransport": "ratekeeper.client._httpx",
    "RetryAdapter": "ratekeeper.client._requests",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ratekeeper.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

"""Redis key names: how a caller's key becomes bytes, and the Cluster hash tag it carries.

Every name the store makes from a caller's key (its counters, its lease set,
its lockout log and block) contains the key with a hash tag: its own ``{...}``
if it has one, else the whole key wrapped, so everything of one caller lands on
one Cluster slot.
"""

from __future__ import annotations

__all__ = ["RedisKey", "encoded", "tagged"]

#: a key name as the stores hand it to redis-py (see :func:`encoded`)
RedisKey = str | bytes


def encoded(name: str) -> RedisKey:
    """A key name as Redis gets it: the same bytes for text, apart bytes for any other ``str``.

    redis-py encodes names as strict UTF-8, so a ``str`` holding a lone
    surrogate (U+D800 to U+DFFF: ``RateLimiter.hit("\\ud800")``, a raw ASGI
    path) raised inside the call, and the store took the caller's key for an
    outage: it failed open, warned, and counted an error. ``surrogatepass``
    writes such a surrogate as the three bytes UTF-8 would give it if it were
    allowed: bytes that no valid text encodes to, so the key is a counter of its
    own, never another's. Valid text gets the very bytes it always had, and
    ASCII (nearly every key) is handed over as it is, after an O(1) check.
    """
    return name if name.isascii() else name.encode("utf-8", "surrogatepass")


def tagged(key: str) -> str:
    """``key`` with a Redis Cluster hash tag: its own ``{...}`` if it has one, else all of it."""
    start = key.find("{")
    if start >= 0 and key.find("}", start + 1) > start + 1:
        return key
    return "{" + key + "}"

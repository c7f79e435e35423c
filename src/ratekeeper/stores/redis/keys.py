"""Redis key names: how a caller's key becomes bytes, and the Cluster hash tag it carries.

Every name the store makes from a caller's key (its counters, its lease set,
its lockout log and block) contains the key with a hash tag: its own ``{...}``
if it has one, else the whole key wrapped, so everything of one caller lands on
one Cluster slot:

    rk:<a><window_ms>[:<limit>:<capacity>]:<key>    a counter (store.py)
    rk:lease:<key>                                 a cap's leases
    rk:lockout:<key>:log, rk:lockout:<key>:block   a lockout

:func:`key_tag` and :func:`key_slot` say where a key lands without asking
Redis, so a policy can be checked before any request.
"""

from __future__ import annotations

__all__ = [
    "RedisKey",
    "encoded",
    "hash_tag",
    "key_slot",
    "key_tag",
    "lease_name",
    "lockout_names",
    "name_slot",
    "tagged",
]

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


def lease_name(prefix: str, key: str) -> RedisKey:
    """The sorted set of ``key``'s concurrency leases: member = lease id, score = expiry (ms)."""
    return encoded(f"{prefix}lease:{tagged(key)}")


def lockout_names(prefix: str, key: str) -> tuple[RedisKey, RedisKey]:
    """``key``'s failure log (a list of times, ms) and its block (``until streak last_end``)."""
    base = f"{prefix}lockout:{tagged(key)}"
    return encoded(base + ":log"), encoded(base + ":block")


def hash_tag(name: str) -> str:
    """What Redis Cluster hashes of the key ``name``: the text between its first ``{``
    and the first ``}`` after it, when that is not empty; else the whole name."""
    start = name.find("{")
    if start >= 0:
        end = name.find("}", start + 1)
        if end > start + 1:
            return name[start + 1 : end]
    return name


def key_tag(key: str) -> str:
    """The hash tag of every Redis key the store names after ``key`` (its counters, its
    lease set, its lockout log and block), whatever the prefix, unless the prefix has
    braces of its own: ``key_tag("scanner:api:{demo-pro}") == "demo-pro"``,
    ``key_tag("user:1") == "user:1"``. Keys with the same tag share a Cluster slot, so
    one step may take them together; a policy can be checked with it before a request.
    """
    return hash_tag(tagged(key))


def key_slot(key: str) -> int:
    """The Redis Cluster slot (0 to 16383) of every Redis key the store names after
    ``key`` (see :func:`key_tag`): CRC16 of its tag, as Redis computes it."""
    return name_slot(tagged(key))


def name_slot(name: str) -> int:
    """The Cluster slot of the Redis key ``name``."""
    return _crc16(encoded(hash_tag(name))) % 16384


def _crc16(data: str | bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0): Redis Cluster's key hash."""
    crc = 0
    for byte in data.encode() if isinstance(data, str) else data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc

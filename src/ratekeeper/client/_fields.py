"""What a response tells a client about waiting: the rate limit header fields, read.

Pure functions of the fields and the local wall clock; nothing here sleeps or
sends. Every value a server may send is read here, once, in the order the
client trusts them (docs/client.md, "What the client waits"):

1. ``Retry-After``: delta seconds, or an HTTP-date;
2. the IETF ``RateLimit`` field, draft-10/11 (``"name";r=REMAINING;t=RESET``)
   or draft-12 (``name;a=AVAILABLE;w=RESET``): a list of items, one per quota;
   the client paces on the item that reaches 0 (else the one with the least
   left);
3. ``RateLimit-Reset`` / ``RateLimit-Remaining`` (the older drafts' fields);
4. ``X-RateLimit-Reset`` / ``X-RateLimit-Remaining``, whose reset is told
   apart by magnitude (:func:`reset_seconds`).

Malformed values are ignored, as draft-ietf-httpapi-ratelimit-headers says of
malformed fields: a value that is not a non-negative number, a date that does
not parse, a list item without its parameters. So are values too large to
mean anything (:data:`MOST_SECONDS`, a day): a wait is never negative, never
infinite, and a garbled field falls through to the next source, then to
backoff. Instants the server wrote (an HTTP-date, an epoch reset) are
corrected for clock skew with its ``Date`` field (:func:`server_skew`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "MOST_SECONDS",
    "Advice",
    "Quota",
    "read_advice",
    "reset_seconds",
    "server_skew",
    "wait_from_date",
    "wait_seconds",
]

#: a wait longer than a day is read as garbage, not as advice (and ignored)
MOST_SECONDS = 86_400.0
#: how far after a ``Date`` the local clock may read and still agree with the server's
SKEW_SLACK = 2.0
#: an X-RateLimit-Reset at or above this is an epoch time in seconds (2001-09-09) ...
EPOCH_SECONDS_FROM = 1_000_000_000
#: ... at or above this, an epoch time in milliseconds (the same date, in ms) ...
EPOCH_MILLISECONDS_FROM = 1_000_000_000_000
#: ... and at or above this, garbage (year 33658 in ms)
GARBAGE_FROM = 1_000_000_000_000_000

_NUMBER = re.compile(r"\d{1,20}(?:\.\d{1,9})?")  # non-negative, no sign, no exponent
# one list item: a token or a quoted name, then ;key=value parameters (RFC 9651, loosely)
_ITEM = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z*][A-Za-z0-9_.:%*/+-]*))\s*((?:;[^,;]*)*)')

Get = Callable[[str], "str | None"]


def _number(text: str | None) -> float | None:
    """A non-negative decimal number, else ``None`` (signs, exponents, nan, inf: garbage)."""
    if text is None:
        return None
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    return float(text)


def wait_seconds(text: str | None) -> float | None:
    """A delay in seconds (``Retry-After: 30``, ``t=30``): non-negative, at most a day."""
    value = _number(text)
    if value is None or value > MOST_SECONDS:
        return None
    return value


def server_skew(date: str | None, wall: float) -> float:
    """How far the local clock runs ahead of the server's (seconds), from its ``Date``.

    ``Date`` has whole seconds: the server's clock read ``date`` to ``date + 1``
    when it answered, and the answer took a while to arrive. A local clock
    less than :data:`SKEW_SLACK` (2 s: that second and the transit) after
    ``date`` is taken to agree (0: a server with a right clock costs nothing);
    otherwise the server's clock is taken to read ``date`` exactly, the
    earliest it can have read, so a wait computed from it is never too short.
    """
    instant = _http_date(date)
    if instant is None:
        return 0.0
    ahead = wall - instant  # local minus the start of the server's second
    if 0.0 <= ahead < SKEW_SLACK:
        return 0.0
    return ahead


def _http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read so
        return None
    return moment.timestamp()


def wait_from_date(text: str, wall: float, skew: float) -> float | None:
    """The wait until an HTTP-date the server wrote; ``None`` if it does not parse.

    A date in the past is a wait of 0 (retry now), one over a day away is garbage.
    """
    instant = _http_date(text)
    if instant is None:
        return None
    wait = instant - (wall - skew)
    if wait > MOST_SECONDS:
        return None
    return max(0.0, wait)


def reset_seconds(text: str | None, wall: float, skew: float) -> float | None:
    """The wait an ``X-RateLimit-Reset`` (or ``RateLimit-Reset``) value means.

    The magnitude tells its unit, as GitHub (epoch seconds), Discord and
    others (delta seconds, some with a fraction) and a few (epoch milliseconds)
    send it: below 10^9 (2001-09-09 as an epoch) it is delta seconds; below
    10^12, epoch seconds; below 10^15, epoch milliseconds; above, garbage.
    An epoch in the past is a wait of 0; a wait over a day is garbage.
    """
    value = _number(text)
    if value is None or value >= GARBAGE_FROM:
        return None
    if value < EPOCH_SECONDS_FROM:
        wait = value
    elif value < EPOCH_MILLISECONDS_FROM:
        wait = value - (wall - skew)
    else:
        wait = value / 1000.0 - (wall - skew)
    if wait > MOST_SECONDS:
        return None
    return max(0.0, wait)


@dataclass(frozen=True, slots=True)
class Quota:
    """One quota the server reported: requests left, and seconds until it resets."""

    name: str
    remaining: int
    reset: float


def _parameters(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in text.split(";"):
        key, equals, value = part.partition("=")
        if equals:
            found.setdefault(key.strip().lower(), value.strip())
    return found


def _whole(text: str | None) -> int | None:
    value = _number(text)
    if value is None or value != math.floor(value) or value >= GARBAGE_FROM:
        return None
    return int(value)


def ietf_quotas(text: str | None) -> list[Quota]:
    """The items of an IETF ``RateLimit`` field, the malformed ones left out.

    draft-10/11: ``"api-1m";r=59;t=60, "api-1h";r=999;t=3600``; draft-12:
    ``api;a=59;w=60``. An item needs a remaining (``r`` or ``a``) and a
    reset (``t`` or ``w``), both valid; anything else about it is ignored.
    """
    if not text:
        return []
    quotas = []
    for raw in _split_items(text):
        match = _ITEM.fullmatch(raw)
        if match is None:
            continue
        quoted, token, parameters = match.groups()
        found = _parameters(parameters)
        remaining = _whole(found.get("r", found.get("a")))
        reset = wait_seconds(found.get("t", found.get("w")))
        if remaining is None or reset is None:
            continue
        quotas.append(Quota(quoted if quoted is not None else token, remaining, reset))
    return quotas


def _split_items(text: str) -> list[str]:
    """A list field split at commas outside quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]


@dataclass(frozen=True, slots=True)
class Advice:
    """What one response says about waiting; every field ``None`` when it says nothing.

    ``wait`` is the wait the server asked for (seconds, skew corrected), with
    ``source`` saying which field gave it: ``retry-after``, ``ratelimit``,
    ``ratelimit-reset`` or ``x-ratelimit-reset``. ``remaining`` and ``reset``
    are the quota the client paces on: requests left, seconds until it returns.
    """

    wait: float | None = None
    source: str | None = None
    remaining: int | None = None
    reset: float | None = None


def read_advice(get: Get, wall: float) -> Advice:
    """What the fields ``get`` returns (by lower-case name) advise, read at ``wall``."""
    skew = server_skew(get("date"), wall)
    remaining, reset, reset_source = _quota(get, wall, skew)
    retry_after = get("retry-after")
    if retry_after is not None:
        wait = wait_seconds(retry_after)
        if wait is None and retry_after.strip()[:1].isalpha():
            wait = wait_from_date(retry_after, wall, skew)
        if wait is not None:
            return Advice(wait, "retry-after", remaining, reset)
    if reset is not None:
        return Advice(reset, reset_source, remaining, reset)
    return Advice(None, None, remaining, reset)


def _quota(get: Get, wall: float, skew: float) -> tuple[int | None, float | None, str | None]:
    """Requests left and seconds to the reset, from the first family that gives them."""
    quotas = ietf_quotas(get("ratelimit"))
    if quotas:
        exhausted = [quota for quota in quotas if quota.remaining == 0]
        if exhausted:  # the longest wait among the quotas that are spent
            quota = max(exhausted, key=lambda quota: quota.reset)
        else:
            quota = min(quotas, key=lambda quota: (quota.remaining, -quota.reset))
        return quota.remaining, quota.reset, "ratelimit"
    for prefix, source in (
        ("ratelimit-", "ratelimit-reset"),
        ("x-ratelimit-", "x-ratelimit-reset"),
    ):
        reset = reset_seconds(get(prefix + "reset"), wall, skew)
        remaining = _whole(get(prefix + "remaining"))
        if reset is not None or remaining is not None:
            return remaining, reset, source if reset is not None else None
    return None, None, None

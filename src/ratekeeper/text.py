"""Text from outside made safe once, where it enters: never an outage, never a 500.

A Python ``str`` can hold what no UTF-8 text can: a lone surrogate (U+D800 to
U+DFFF). ASGI servers put them in ``scope["path"]`` when they decode path bytes
with ``surrogateescape`` (byte 0xFF becomes U+DCFF), and a caller of the Python
API can pass any ``str``. Such a string cannot be encoded as UTF-8: redis-py
refuses it (which the Redis store took for an outage and failed open), a 429
body cannot carry it (the middleware answered 500), an API key cannot be
hashed.

:func:`safe_text` escapes it once, where it enters, so every layer below
(routes, counter keys, stores, bodies, hashes, logs) only ever sees text that
encodes. It enters in four places: the method and path when they are routed
(``policy.router.RouteMemo``, once per distinct request line), the client
address (``Limiter.client_ip``, and the ASGI middleware's lanes), the API key
when it is read (``Limiter.check``), and the headers a limit counts by when
they are read (``charging``). The escaping:

- a lone surrogate becomes U+FFFD (the replacement character) followed by its
  four hex digits: ``"/api/\\udcff"`` -> ``"/api/\\ufffddcff"``;
- a U+FFFD already there is doubled.

So the escaping is injective: after a U+FFFD of the result comes either
another U+FFFD or a hex digit, never both, and the original can be read back.
No two different strings escape alike, so no client can share (or take over)
another's counter: a real key that reads like the escape of another
(``"\\ufffddcff"``) escapes to ``"\\ufffd\\ufffddcff"``, a counter of its own.
Keys are escaped, never refused: a request with such a key is answered like
any other.

Everything else is returned as it is, at the cost of ``str.isascii()`` for
ASCII text (a flag CPython keeps on every string: O(1)), which the callers
test before calling, and of one regex scan for other text (measured: +160
instructions per request on the ASGI lane, +350 on ``Limiter.check``, of
23k and 39k). Text decoded from bytes as latin-1 (ASGI header values, PEP
3333 environ strings) holds only U+0000 to U+00FF, so it never changes.
"""

from __future__ import annotations

import re

__all__ = ["MARK", "safe_text"]

#: what starts an escape (and, doubled, stands for itself)
MARK = "\ufffd"

_UNSAFE = re.compile("[\ud800-\udfff\ufffd]")


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    return MARK + MARK if char == MARK else f"{MARK}{ord(char):04x}"


def safe_text(text: str) -> str:
    """``text`` with every lone surrogate escaped (module docstring); others unchanged.

    >>> safe_text("/api/scans")
    '/api/scans'
    >>> safe_text("/api/\\udcff") == "/api/\\ufffddcff"
    True
    """
    if text.isascii() or _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)

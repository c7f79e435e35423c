"""The dashboard's session cookie and CSRF tokens: HMACs of the admin token, nothing stored.

A session is ``<expiry>.<nonce>.<mac>``: when it ends (epoch seconds), a
random nonce of this login, and HMAC-SHA256 of both under the admin token.
Any replica that has the same admin token accepts it, and none needs to
remember it; changing the token ends every session at once. A session is
checked with :func:`hmac.compare_digest`, which takes the same time wherever
the MACs differ.

The CSRF token of a session is another HMAC of the admin token, of the
session's value under another purpose: a page's forms carry it in a hidden
field, and a POST is accepted only with the token of the session that sent
it. A cross-site page can make a browser send the cookie (SameSite=Strict
already stops that in current browsers) but cannot read the page that holds
the token, so it cannot forge the field.

Pure functions of their arguments; ``now`` is given, so tests set the time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = [
    "COOKIE",
    "LIFETIME",
    "csrf_token",
    "csrf_valid",
    "new_session",
    "session_valid",
    "token_matches",
]

#: the session cookie's name (its path is ``/dashboard``)
COOKIE = "rk_dashboard"
#: seconds a session lasts from its login: a working day, then the token again
LIFETIME = 12 * 3600
#: a session value is never longer (a longer cookie is not read further)
_MOST = 200


def _mac(token: str, purpose: str, message: str) -> str:
    key = token.encode("utf-8")
    return hmac.new(
        key, f"ratekeeper dashboard {purpose}\0{message}".encode(), hashlib.sha256
    ).hexdigest()


def token_matches(given: str, token: str) -> bool:
    """Is ``given`` the admin token? In constant time, whatever it is."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def new_session(token: str, now: float, lifetime: int = LIFETIME) -> str:
    """A session of ``lifetime`` seconds from ``now``, for the cookie."""
    expiry = int(now) + lifetime
    nonce = secrets.token_urlsafe(12)
    body = f"{expiry}.{nonce}"
    return f"{body}.{_mac(token, 'session', body)}"


def session_valid(token: str, value: str, now: float) -> bool:
    """Was ``value`` made by :func:`new_session` with ``token``, and is it not over?"""
    if len(value) > _MOST:
        return False
    body, _, mac = value.rpartition(".")
    expiry, _, nonce = body.partition(".")
    if not expiry.isdigit() or not nonce:
        return False
    matched = hmac.compare_digest(
        mac.encode("ascii", "replace"), _mac(token, "session", body).encode()
    )
    return matched and int(expiry) > now


def csrf_token(token: str, session: str) -> str:
    """The CSRF token of ``session``: what its forms carry in their ``csrf`` field."""
    return _mac(token, "csrf", session)


def csrf_valid(token: str, session: str, given: str) -> bool:
    """Is ``given`` the CSRF token of ``session``? In constant time."""
    return hmac.compare_digest(
        given.encode("ascii", "replace"), csrf_token(token, session).encode()
    )

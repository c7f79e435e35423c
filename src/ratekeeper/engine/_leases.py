"""The concurrency slots a decision holds, as an opaque handle.

A lease leaves the engine as a :class:`Lease`, never as its store keys: the keys
name the caller's counters (its key id, address or user) and a caller who could
name them could give back slots it never took. A face that hands a lease to
another process (the decision service's ``/v1/check`` returns one, its
``/v1/release`` takes it back, maybe on another replica) turns it into a token
with :class:`LeaseSeal`: encrypted and authenticated with the service's secret,
so the token says nothing of the keys and cannot be forged or altered.

The seal uses the standard library only: SHAKE-256 keyed by the secret and a
random nonce as the key stream, HMAC-SHA256 over nonce and ciphertext
(encrypt-then-MAC, separate keys derived from the secret). A token that fails
its check is no lease (``None``): never an error that says why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets

__all__ = ["Lease", "LeaseSeal"]

#: ``(lease key, lease id)`` of each slot held
Held = tuple[tuple[str, str], ...]

_NONCE = 16
_TAG = 16
_VERSION = b"\x01"
#: the most slots one token may hold: a policy has a few caps per category
_MOST_SLOTS = 64
#: the longest token read: nonce, tag and the keys of ``_MOST_SLOTS`` slots
MAX_TOKEN = 16_384


class Lease:
    """The concurrency slots one admitted decision holds; give it back to release them."""

    __slots__ = ("_held",)

    def __init__(self, held: Held) -> None:
        self._held = held

    def __len__(self) -> int:
        """How many slots it holds."""
        return len(self._held)

    def __repr__(self) -> str:
        return f"<Lease of {len(self._held)} slot(s)>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lease) and other._held == self._held

    def __hash__(self) -> int:
        return hash(self._held)


def held(lease: Lease) -> Held:
    """The slots of ``lease``: for the limiters that release them, never for faces."""
    return lease._held


class LeaseSeal:
    """Turns a :class:`Lease` into an opaque token and back, with one secret.

    ``secret`` (at least 16 bytes) must be the same on every process that
    releases a lease another took; without one a random secret of this process
    is used, so a token is only good where it was made.
    """

    __slots__ = ("_crypt", "_mac")

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        if len(secret) < 16:
            raise ValueError("a lease secret needs at least 16 bytes")
        self._crypt = hmac.digest(secret, b"ratekeeper lease encryption", "sha256")
        self._mac = hmac.digest(secret, b"ratekeeper lease authentication", "sha256")

    def seal(self, lease: Lease) -> str:
        """The token of ``lease``: URL-safe text, different every time."""
        plain = json.dumps(lease._held, separators=(",", ":")).encode("utf-8", "surrogatepass")
        nonce = secrets.token_bytes(_NONCE)
        sealed = _VERSION + nonce + self._xor(nonce, plain)
        tag = hmac.digest(self._mac, sealed, "sha256")[:_TAG]
        return base64.urlsafe_b64encode(sealed + tag).rstrip(b"=").decode("ascii")

    def open(self, token: str) -> Lease | None:
        """The lease ``token`` stands for; ``None`` for anything not sealed here."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        sealed, tag = raw[:-_TAG], raw[-_TAG:]
        if len(sealed) < 1 + _NONCE or sealed[:1] != _VERSION:
            return None
        if not hmac.compare_digest(hmac.digest(self._mac, sealed, "sha256")[:_TAG], tag):
            return None
        nonce = sealed[1 : 1 + _NONCE]
        plain = self._xor(nonce, sealed[1 + _NONCE :])
        try:
            slots = json.loads(plain.decode("utf-8", "surrogatepass"))
        except ValueError:
            return None
        if not isinstance(slots, list) or not 0 < len(slots) <= _MOST_SLOTS:
            return None
        if not all(
            isinstance(slot, list) and len(slot) == 2 and all(isinstance(s, str) for s in slot)
            for slot in slots
        ):
            return None
        return Lease(tuple((key, lease_id) for key, lease_id in slots))

    def _xor(self, nonce: bytes, data: bytes) -> bytes:
        """``data`` XOR the key stream of ``nonce`` (encrypts and decrypts)."""
        stream = hashlib.shake_256(self._crypt + nonce).digest(len(data))
        return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            len(data), "big"
        )

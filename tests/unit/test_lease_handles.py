"""A lease leaves the engine as an opaque handle, and crosses processes as a sealed token."""

from __future__ import annotations

import base64
import textwrap

import pytest

from ratekeeper import Limiter, MemoryStore
from ratekeeper.engine import Lease, LeaseSeal
from ratekeeper.policy import policy_from_text
from support.clock import Clock

POLICY = """\
version: 1
name: t
limits:
  api: {by: api_key, rate: 100/minute}
  slots: {by: api_key, concurrency: 2}
keys:
  - {key: secret-key-k1, id: k1}
categories:
  - {name: api, match: /api/**, charge: [api, slots]}
"""
CALL = {"path": "/api/x", "headers": {"X-API-Key": "secret-key-k1"}, "lease": True}


def make() -> Limiter:
    store = MemoryStore(clock=Clock(1_700_000_040.0))
    return Limiter(policy_from_text(textwrap.dedent(POLICY), name="t"), store=store)


def slots_in_use(limiter: Limiter) -> int:
    ((key, _, _),) = limiter.check(path="/api/x", headers=CALL["headers"]).concurrency
    return limiter.store.leases.in_use(key)


def test_the_handle_says_nothing_of_its_keys() -> None:
    decision = make().check(**CALL)  # type: ignore[arg-type]
    assert isinstance(decision.lease, Lease)
    assert repr(decision.lease) == "<Lease of 1 slot(s)>"
    assert "k1" not in repr(decision.lease)


def test_a_sealed_token_releases_the_slot_once_and_hides_the_key() -> None:
    limiter, seal = make(), LeaseSeal(b"s" * 32)
    decision = limiter.check(**CALL)  # type: ignore[arg-type]
    assert decision.lease is not None
    token = seal.seal(decision.lease)
    assert seal.seal(decision.lease) != token  # a fresh nonce every time
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"k1" not in raw
    assert b"slots" not in raw
    assert slots_in_use(limiter) == 1

    opened = seal.open(token)
    assert opened == decision.lease
    assert limiter.release_lease(opened) == 1
    assert slots_in_use(limiter) == 0
    assert limiter.release_lease(opened) == 0  # released twice, released once


def test_another_replica_with_the_same_secret_opens_it_and_one_without_does_not() -> None:
    decision = make().check(**CALL)  # type: ignore[arg-type]
    assert decision.lease is not None
    token = LeaseSeal(b"shared secret, 32 bytes long...").seal(decision.lease)
    assert LeaseSeal(b"shared secret, 32 bytes long...").open(token) == decision.lease
    assert LeaseSeal(b"another secret, 32 bytes long..").open(token) is None
    assert LeaseSeal().open(token) is None  # a random secret of its own


def test_an_altered_or_malformed_token_is_no_lease() -> None:
    seal = LeaseSeal(b"s" * 32)
    decision = make().check(**CALL)  # type: ignore[arg-type]
    assert decision.lease is not None
    token = seal.seal(decision.lease)
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (flipped, token[:-2], "", "!!!", "A" * 20_000, token + "AAAA", "\ud800"):
        assert seal.open(bad) is None


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        LeaseSeal(b"short")

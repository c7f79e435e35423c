"""Keys from outside the policy file (the registry's): known, overriding, revoked."""

from __future__ import annotations

import textwrap

import pytest

from ratekeeper import Limiter, MemoryStore
from ratekeeper.policy import KeyEntry, PolicyError, hash_api_key, key_limits, policy_from_text
from support.clock import Clock

POLICY = policy_from_text(
    textwrap.dedent("""\
    version: 1
    name: t
    limits:
      api: {by: api_key, rate: 100/minute, algorithm: fixed_window}
      global: {by: api_key, rate: 1000/minute, algorithm: fixed_window}
    plans:
      free: {limits: {api: 2/minute}}
      pro: {limits: {api: 5/minute}}
    keys:
      - {key: policy-key, id: p1, plan: free}
    categories:
      - {name: api, match: /api/**, charge: [api, global]}
    """),
    name="t",
)


def entry(raw: str, key_id: str, plan: str, **limits: object) -> KeyEntry:
    return KeyEntry(key_id, hash_api_key(raw), plan, limits=key_limits(POLICY, limits))


def admitted(limiter: Limiter, raw: str, tries: int = 8) -> int:
    headers = {"X-API-Key": raw}
    return sum(limiter.check(path="/api/x", headers=headers).allowed for _ in range(tries))


def make() -> Limiter:
    return Limiter(POLICY, MemoryStore(clock=Clock(1_700_000_040.0)))


def test_a_registry_key_is_known_with_its_plan_and_its_own_limits() -> None:
    limiter = make()
    assert limiter.check(path="/api/x", headers={"X-API-Key": "rk_new"}).status_code == 401
    limiter.use_keys([entry("rk_new", "r1", "pro"), entry("rk_vip", "r2", "free", api="7/minute")])
    decision = limiter.check(path="/api/x", headers={"X-API-Key": "rk_new"})
    assert (decision.status_code, decision.plan, decision.key_id) == (200, "pro", "r1")
    assert admitted(limiter, "rk_new") == 4  # 5/minute, one taken above
    assert admitted(limiter, "rk_vip") == 7


def test_a_key_left_out_is_unknown_at_the_next_request_even_when_remembered() -> None:
    limiter = make()
    limiter.use_keys([entry("rk_new", "r1", "pro")])
    assert admitted(limiter, "rk_new", 1) == 1  # now remembered as presented
    limiter.use_keys([])
    assert limiter.check(path="/api/x", headers={"X-API-Key": "rk_new"}).status_code == 401
    assert admitted(limiter, "policy-key", 1) == 1  # the policy's own keys stay


def test_an_entry_wins_over_the_policy_key_of_the_same_id_or_hash() -> None:
    limiter = make()
    limiter.use_keys([entry("policy-key", "other", "pro")])  # same hash
    assert limiter.check(path="/api/x", headers={"X-API-Key": "policy-key"}).key_id == "other"
    limiter.use_keys([entry("replaced", "p1", "pro")])  # same id: the old key no longer works
    assert limiter.check(path="/api/x", headers={"X-API-Key": "policy-key"}).status_code == 401
    assert limiter.check(path="/api/x", headers={"X-API-Key": "replaced"}).plan == "pro"


def test_an_entry_of_a_plan_the_policy_lacks_is_skipped() -> None:
    limiter = make()
    limiter.use_keys([KeyEntry("r9", hash_api_key("rk_gone"), "gold")])
    assert limiter.check(path="/api/x", headers={"X-API-Key": "rk_gone"}).status_code == 401


def test_a_key_may_set_only_limits_that_depend_on_the_caller() -> None:
    assert key_limits(POLICY, {"api": "unlimited"}) == {"api": ()}
    with pytest.raises(PolicyError, match="'global' has one value for every caller"):
        key_limits(POLICY, {"global": "5/minute"})
    with pytest.raises(PolicyError, match="no limit named 'nope'"):
        key_limits(POLICY, {"nope": "5/minute"})
    with pytest.raises(PolicyError):
        key_limits(POLICY, {"api": "five a minute"})

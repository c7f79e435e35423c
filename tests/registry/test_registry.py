"""The registry of API keys on SQLite and on a real PostgreSQL: keys, refusals, audit rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from ratekeeper.policy import Policy, hash_api_key, policy_from_text
from ratekeeper.registry import (
    InvalidKeyError,
    KeyConflictError,
    KeyNotFoundError,
    Registry,
)
from ratekeeper.registry._tables import keys

ACTOR = "test:alice"


def state(registry: Registry) -> tuple[list[object], int, int]:
    """Everything a refused call must leave as it was: keys, audit rows, revision."""
    return (
        registry.list_keys(include_revoked=True),
        len(registry.audit()),
        registry.revision(),
    )


def test_a_new_key_is_shown_once_and_stored_as_its_sha256_only(
    registry: Registry, policy: Policy
) -> None:
    record, raw = registry.create_key(
        policy=policy, plan="pro", name="acme", key_id="acme-1", user="u-7", actor=ACTOR
    )
    assert raw.startswith("rk_")
    assert len(raw) == 3 + 43
    assert (record.id, record.name, record.plan, record.user) == ("acme-1", "acme", "pro", "u-7")
    assert record.limits == {}
    assert record.revoked_at is None
    assert record.created_at is not None
    assert record.created_at.tzinfo is UTC
    with registry.engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(select(keys))]
    assert len(rows) == 1
    assert hash_api_key(raw) in rows[0]
    assert not any(raw in str(value) for value in rows[0])  # only the hash is kept
    assert registry.get_key("acme-1") == record
    assert registry.list_keys() == [record]


def test_two_keys_get_distinct_ids_and_keys(registry: Registry, policy: Policy) -> None:
    first, raw1 = registry.create_key(policy=policy, plan="free", actor=ACTOR)
    second, raw2 = registry.create_key(policy=policy, plan="free", actor=ACTOR)
    assert first.id != second.id
    assert raw1 != raw2
    assert first.id.startswith("k-")
    assert len(first.id) == 14
    assert [record.id for record in registry.list_keys()] == sorted([first.id, second.id])


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        ({"plan": "gold"}, "plan",
         "policy 'reg' has no plan 'gold' (its plans: anonymous, free, pro)"),
        ({"plan": "free", "limits": {"nope": "1/minute"}}, "limits.nope",
         "limits.nope: no limit named 'nope'"),
        ({"plan": "free", "limits": {"api": "60/minit"}}, "limits.api", "limits.api: "),
        ({"plan": "free", "limits": {"everyone": "5/minute"}}, "limits.everyone",
         "one value for every caller"),
        ({"plan": "free", "key_id": "no spaces"}, "id", "key id 'no spaces' is not a name"),
        ({"plan": "free", "key_id": "x" * 65}, "id", "is not a name"),
        ({"plan": "free", "name": "tab\there"}, "name", "name must be printable text"),
    ],
)  # fmt: skip
def test_create_refuses_what_the_policy_lacks_and_writes_nothing(
    registry: Registry, policy: Policy, call: dict[str, object], field: str, message: str
) -> None:
    before = state(registry)
    with pytest.raises(InvalidKeyError) as caught:
        registry.create_key(policy=policy, actor=ACTOR, **call)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert message in str(caught.value)
    assert state(registry) == before


def test_create_takes_a_key_its_own_limits(registry: Registry, policy: Policy) -> None:
    limits = {"api": "100/minute", "slots": 9}
    record, raw = registry.create_key(
        policy=policy, plan="free", key_id="vip", limits=limits, actor=ACTOR
    )
    assert record.limits == limits
    (entry,) = registry.entries(policy)
    assert (entry.id, entry.sha256, entry.plan) == ("vip", hash_api_key(raw), "free")
    assert entry.limits["slots"] == 9
    assert str(entry.limits["api"][0]) == "100/minute"  # type: ignore[index]


def test_an_id_is_taken_for_good_even_once_revoked(registry: Registry, policy: Policy) -> None:
    registry.create_key(policy=policy, plan="free", key_id="acme", actor=ACTOR)
    registry.revoke("acme", actor=ACTOR)
    before = state(registry)
    with pytest.raises(KeyConflictError, match="a key with id 'acme' exists already"):
        registry.create_key(policy=policy, plan="free", key_id="acme", actor=ACTOR)
    assert state(registry) == before


def test_a_registry_key_may_take_a_policy_keys_id(registry: Registry, policy: Policy) -> None:
    record, _ = registry.create_key(policy=policy, plan="pro", key_id="demo-free", actor=ACTOR)
    assert record.id == "demo-free"  # it wins over the policy's key (the engine's rule)


def test_revoke_marks_the_key_and_drops_it_from_the_live_ones(
    registry: Registry, policy: Policy
) -> None:
    record, _ = registry.create_key(policy=policy, plan="free", key_id="acme", actor=ACTOR)
    revision = registry.revision()
    revoked = registry.revoke("acme", actor=ACTOR)
    assert revoked.revoked_at is not None
    assert revoked.created_at == record.created_at
    assert registry.revision() == revision + 1
    assert registry.list_keys() == []
    assert registry.list_keys(include_revoked=True) == [revoked]
    assert registry.get_key("acme") == revoked
    assert registry.entries(policy) == ()
    assert registry.plans_in_use() == set()
    before = state(registry)
    with pytest.raises(KeyConflictError, match="key 'acme' was revoked at 20"):
        registry.revoke("acme", actor=ACTOR)
    with pytest.raises(KeyConflictError, match="a revoked key stays revoked"):
        registry.set_plan("acme", "pro", policy=policy, actor=ACTOR)
    with pytest.raises(KeyNotFoundError, match="no key with id 'ghost' in the registry"):
        registry.revoke("ghost", actor=ACTOR)
    assert state(registry) == before


def test_set_plan_moves_a_key_and_keeps_its_overrides(registry: Registry, policy: Policy) -> None:
    registry.create_key(policy=policy, plan="free", key_id="acme", limits={"slots": 3}, actor=ACTOR)
    moved = registry.set_plan("acme", "pro", policy=policy, actor=ACTOR)
    assert (moved.plan, moved.limits) == ("pro", {"slots": 3})
    assert registry.get_key("acme") == moved
    assert registry.plans_in_use() == {"pro"}
    before = state(registry)
    with pytest.raises(InvalidKeyError, match="no plan 'gold'"):
        registry.set_plan("acme", "gold", policy=policy, actor=ACTOR)
    with pytest.raises(KeyNotFoundError):
        registry.set_plan("ghost", "pro", policy=policy, actor=ACTOR)
    assert state(registry) == before


def test_set_limits_replaces_and_clears_a_keys_own_limits(
    registry: Registry, policy: Policy
) -> None:
    registry.create_key(policy=policy, plan="free", key_id="acme", actor=ACTOR)
    assert registry.set_limits("acme", {"api": "unlimited"}, policy=policy, actor=ACTOR).limits == {
        "api": "unlimited"
    }
    (entry,) = registry.entries(policy)
    assert entry.limits == {"api": ()}  # unlimited
    before = state(registry)
    with pytest.raises(InvalidKeyError, match=r"limits\.api"):
        registry.set_limits("acme", {"api": "lots"}, policy=policy, actor=ACTOR)
    assert state(registry) == before
    assert registry.set_limits("acme", None, policy=policy, actor=ACTOR).limits == {}
    assert registry.entries(policy)[0].limits == {}


def test_every_change_is_an_audit_row_who_what_when(registry: Registry, policy: Policy) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    registry.create_key(policy=policy, plan="free", key_id="acme", name="Acme", actor="cli:alice")
    registry.set_plan("acme", "pro", policy=policy, actor="admin@10.0.0.5")
    registry.set_limits("acme", {"slots": 8}, policy=policy, actor="admin@10.0.0.5")
    registry.record("key.reset", actor="admin@10.0.0.5", target="acme", detail={"counters": 1})
    registry.revoke("acme", actor="cli:bob")
    events = registry.audit()
    assert [(event.kind, event.actor, event.target, event.detail) for event in events] == [
        ("key.create", "cli:alice", "acme",
         {"name": "Acme", "plan": "free", "user": None, "limits": {}}),
        ("key.plan", "admin@10.0.0.5", "acme", {"plan": "pro", "from": "free"}),
        ("key.limits", "admin@10.0.0.5", "acme", {"limits": {"slots": 8}}),
        ("key.reset", "admin@10.0.0.5", "acme", {"counters": 1}),
        ("key.revoke", "cli:bob", "acme", {}),
    ]  # fmt: skip
    assert [event.id for event in events] == sorted(event.id for event in events)
    assert all(started <= event.at <= datetime.now(UTC) for event in events)
    assert all(event.at.tzinfo is UTC for event in events)


def test_the_audit_log_is_read_by_time_key_and_kind(registry: Registry, policy: Policy) -> None:
    registry.create_key(policy=policy, plan="free", key_id="a", actor=ACTOR)
    registry.create_key(policy=policy, plan="free", key_id="b", actor=ACTOR)
    registry.revoke("a", actor=ACTOR)
    assert [event.kind for event in registry.audit(key="a")] == ["key.create", "key.revoke"]
    assert [event.target for event in registry.audit(kind="key.create")] == ["a", "b"]
    assert [event.target for event in registry.audit(kind="key.create", limit=1)] == ["a"]
    newest = registry.audit(kind="key.create", limit=1, newest_first=True)
    assert [event.target for event in newest] == ["b"]  # the latest, however many came before
    last = registry.audit()[-1]
    assert registry.audit(since=last.at) == [last]
    assert registry.audit(since=last.at + timedelta(seconds=1)) == []
    with pytest.raises(ValueError, match="limit must be 1 to 1000"):
        registry.audit(limit=0)


def test_entries_are_the_same_objects_while_a_key_is_unchanged(
    registry: Registry, policy: Policy, policy_text: str
) -> None:
    registry.create_key(policy=policy, plan="free", key_id="a", actor=ACTOR)
    registry.create_key(policy=policy, plan="free", key_id="b", actor=ACTOR)
    first = registry.entries(policy)
    registry.set_plan("b", "pro", policy=policy, actor=ACTOR)
    second = registry.entries(policy)
    assert second[0] is first[0]  # unchanged: the limiter reuses its compiled key
    assert second[1] is not first[1]
    assert second[1].plan == "pro"
    other = policy_from_text(policy_text, name="reg")
    assert registry.entries(other)[0] is not first[0]  # another policy: made again


def test_a_key_whose_limits_the_policy_dropped_gets_its_plans_with_a_warning(
    registry: Registry, policy: Policy, policy_text: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry.create_key(policy=policy, plan="pro", key_id="vip", limits={"slots": 9}, actor=ACTOR)
    smaller = policy_from_text(
        policy_text.replace("  slots: {by: api_key, concurrency: 2}\n", "")
        .replace(", slots: 4", "")
        .replace("charge: [api, slots, everyone]", "charge: [api, everyone]"),
        name="reg",
    )
    with caplog.at_level(logging.WARNING, logger="ratekeeper.registry"):
        (entry,) = registry.entries(smaller)
    assert (entry.id, entry.plan, entry.limits) == ("vip", "pro", {})
    assert "key vip: its own limits do not fit policy 'reg'" in caplog.text


def test_the_schema_is_made_by_the_migrations_and_opening_again_changes_nothing(
    database_url: str,
) -> None:
    first = Registry.open(database_url)
    try:
        with first.engine.connect() as connection:
            version = connection.execute(
                text("SELECT version_num FROM ratekeeper_alembic_version")
            ).scalar()
        assert version == "0002"
        assert first.revision() == 0
    finally:
        first.close()
    again = Registry.open(database_url)
    try:
        assert again.revision() == 0
    finally:
        again.close()

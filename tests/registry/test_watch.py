"""Keys kept fresh across processes: a change on one replica, refused on another.

Each test has two registries on one database (SQLite and a real PostgreSQL):
the "admin" one changes keys, the "replica" one watches and feeds a limiter,
as ``ratekeeper serve`` does (``limiter.use_keys``). ``poll()`` is one look of
the watcher, called directly where the numbers matter; the threaded watcher
and a second OS process are checked too.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from ratekeeper import Limiter, MemoryStore
from ratekeeper.policy import KeyEntry, Policy
from ratekeeper.registry import Registry, Watcher
from support.clock import Clock

ACTOR = "test:alice"
T0 = 1_728_000.0


@pytest.fixture
def replica(database_url: str) -> Iterator[Registry]:
    """A second registry on the same database: another replica's."""
    registry = Registry.open(database_url)
    yield registry
    registry.close()


def status(limiter: Limiter, raw: str) -> tuple[int, str | None]:
    decision = limiter.check(path="/api/x", headers={"X-API-Key": raw})
    return decision.status_code, decision.plan


def test_a_key_made_on_one_replica_is_known_on_another_at_its_next_look(
    registry: Registry, replica: Registry, policy: Policy
) -> None:
    limiter = Limiter(policy, MemoryStore(clock=Clock(T0)))
    watcher = Watcher(replica.revision, replica.entries, lambda: policy, limiter.use_keys)
    assert watcher.poll() is True  # the first look always hands the keys over
    _, raw = registry.create_key(policy=policy, plan="pro", key_id="acme", actor=ACTOR)
    assert status(limiter, raw) == (401, None)
    assert watcher.poll() is True
    assert status(limiter, raw) == (200, "pro")
    assert watcher.poll() is False  # nothing changed: one query, no read of the keys


def test_revoked_and_moved_keys_take_effect_at_the_next_look(
    registry: Registry, replica: Registry, policy: Policy
) -> None:
    limiter = Limiter(policy, MemoryStore(clock=Clock(T0)))
    _, gone = registry.create_key(policy=policy, plan="pro", key_id="gone", actor=ACTOR)
    _, moved = registry.create_key(policy=policy, plan="free", key_id="moved", actor=ACTOR)
    watcher = Watcher(replica.revision, replica.entries, lambda: policy, limiter.use_keys)
    watcher.poll()
    assert status(limiter, gone) == (200, "pro")
    assert status(limiter, moved) == (200, "free")
    registry.revoke("gone", actor=ACTOR)
    registry.set_plan("moved", "pro", policy=policy, actor=ACTOR)
    registry.set_limits("moved", {"api": "1/minute"}, policy=policy, actor=ACTOR)
    assert status(limiter, gone) == (200, "pro")  # until this replica looks
    assert watcher.poll() is True
    assert status(limiter, gone) == (401, None)  # the policy's unknown-key answer
    assert status(limiter, moved) == (429, "pro")  # its own 1/minute, one used above


def test_another_policy_in_force_hands_the_keys_over_again(
    registry: Registry, replica: Registry, policy: Policy, policy_text: str
) -> None:
    from ratekeeper.policy import policy_from_text

    current = [policy]
    handed: list[tuple[KeyEntry, ...]] = []
    registry.create_key(policy=policy, plan="pro", key_id="acme", actor=ACTOR)
    watcher = Watcher(replica.revision, replica.entries, lambda: current[0], handed.append)
    watcher.poll()
    current[0] = policy_from_text(policy_text, name="reg")
    assert watcher.poll() is True
    assert [[entry.id for entry in entries] for entries in handed] == [["acme"], ["acme"]]


def test_the_watcher_thread_sees_a_revocation_made_elsewhere(
    registry: Registry, replica: Registry, policy: Policy
) -> None:
    limiter = Limiter(policy, MemoryStore(clock=Clock(T0)))
    _, raw = registry.create_key(policy=policy, plan="pro", key_id="acme", actor=ACTOR)
    watcher = replica.watch(lambda: policy, limiter.use_keys, every=0.05)
    try:
        assert watcher.running
        assert status(limiter, raw) == (200, "pro")  # the first look is synchronous
        registry.revoke("acme", actor=ACTOR)
        deadline = time.monotonic() + 10
        while status(limiter, raw) != (401, None):
            assert time.monotonic() < deadline, "the watcher never saw the revocation"
            time.sleep(0.01)
    finally:
        watcher.stop()
    assert not watcher.running


def test_a_failing_database_is_logged_once_and_the_last_keys_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([1, RuntimeError("down"), RuntimeError("down"), 1, 2])
    looked = threading.Event()
    handed: list[tuple[KeyEntry, ...]] = []

    def revision() -> int:
        answer = next(answers, None)
        if answer is None:
            looked.set()
            return 2
        if isinstance(answer, Exception):
            raise answer
        return answer

    watcher = Watcher(revision, lambda policy: (), lambda: None, handed.append, every=0.01)  # type: ignore[arg-type,return-value]
    with caplog.at_level(logging.WARNING, logger="ratekeeper.registry"):
        watcher.poll()
        watcher.start()
        assert looked.wait(10)
        watcher.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "the registry does not answer (down); keeping its last keys",
        "the registry answers again",
    ]
    assert len(handed) == 2  # revision 1, then 2: never an empty hand-over for the failures


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every must be a positive number of seconds, got 0"):
        Watcher(lambda: 0, lambda policy: (), lambda: None, print, every=0)  # type: ignore[arg-type,return-value]


#: a replica in its own process: prints its answer for the key until it is refused
_REPLICA = textwrap.dedent("""\
    import sys, time
    from ratekeeper import Limiter, MemoryStore
    from ratekeeper.policy import policy_from_text
    from ratekeeper.registry import Registry

    url, raw, policy_text = sys.argv[1:4]
    policy = policy_from_text(policy_text, name="reg")
    limiter = Limiter(policy, MemoryStore())
    registry = Registry.open(url)
    watcher = registry.watch(lambda: policy, limiter.use_keys, every=0.05)
    while True:
        code = limiter.check(path="/api/x", headers={"X-API-Key": raw}).status_code
        print(code, flush=True)
        if code == 401:
            break
        time.sleep(0.02)
    watcher.stop()
    registry.close()
    """)


def test_a_revocation_is_refused_by_a_second_process(
    registry: Registry, database_url: str, policy: Policy, policy_text: str
) -> None:
    _, raw = registry.create_key(policy=policy, plan="free", key_id="acme", actor=ACTOR)
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _REPLICA, database_url, raw, policy_text],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "200"  # known there
        registry.revoke("acme", actor=ACTOR)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.split()[-1] == "401"

"""RedisStore through Sentinel and Cluster failovers: real servers, real crashes.

A failover is provoked the hard way: the master gets SIGKILL, and the
Sentinels (or the Cluster's own nodes) promote its replica. Meanwhile every
decision must come back, never raise: ``on_error="open"`` admits,
``"closed"`` refuses with ``retry_after`` 1 s. Each decision is classified by
whether the store counted an error for it, so a decision that happened to
reach the new master early is checked as an exact one instead of failing the
test on a race. Once the new master is known, fresh keys must be limited
exactly again within a second. Counters written before the crash may or may
not have reached the replica, so nothing is asserted about them.

Every test here that kills a process owns its servers (``own_sentinel``,
``own_cluster``, ``lone_masters``), so the session's shared ones never fail
over under another test.

Two RedisStore behaviours found here are pinned: closing a Sentinel store
closes its connections to the Sentinels too, and a decision on a down Cluster
answers per on_error within a second (one retry, no backoff).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.cluster

from ratekeeper import AsyncRateLimiter, Decision, RateLimiter, RedisStore
from support.redis_servers import RedisCluster, RedisSentinel, RedisServer

pytestmark = pytest.mark.redis

LIMIT = 5
RATE = f"{LIMIT}/minute"
#: a fresh key under RATE: the limit passes, the next hit is refused
EXACT = [True] * LIMIT + [False]
#: bound on every wait for a failover; they take about 2-3 s here
FAILOVER_DEADLINE = 20.0
#: from "the new master is known" to fresh keys limited exactly again
RECOVERY = 1.0


@dataclass
class Face:
    """One way of asking: a limiter (sync or asyncio) over a store failing open or closed.

    ``failed`` and ``through`` count the decisions taken during an outage that
    came from ``on_error`` and from Redis.
    """

    name: str
    store: RedisStore
    limiter: RateLimiter | AsyncRateLimiter
    failed: int = 0
    through: int = 0

    async def hit(self, key: str) -> Decision:
        if isinstance(self.limiter, AsyncRateLimiter):
            return await self.limiter.hit(key, RATE)
        return self.limiter.hit(key, RATE)

    async def pattern(self, key: str) -> list[bool]:
        """``allowed`` of LIMIT + 1 hits on ``key``: EXACT when Redis counts."""
        return [(await self.hit(key)).allowed for _ in range(LIMIT + 1)]

    async def hit_during_outage(self, key: str) -> None:
        """Hit fresh ``key``: an ``on_error`` answer if it failed, else an exact one."""
        errors = self.store.errors
        decision = await self.hit(key)
        if self.store.errors == errors:  # Redis answered: the first hit of a fresh key
            assert (decision.allowed, decision.remaining) == (True, LIMIT - 1), self.name
            self.through += 1
            return
        self.failed += 1
        if self.store.on_error == "open":
            assert decision.allowed, self.name
        else:
            assert (decision.allowed, decision.retry_after) == (False, 1.0), self.name

    async def until_through(self, key_prefix: str, deadline: float) -> None:
        """Hit fresh keys until one reaches Redis (a pooled connection may still fail once)."""
        for attempt in itertools.count():
            errors = self.store.errors
            await self.hit(f"{key_prefix}:{attempt}")
            if self.store.errors == errors:
                return
            assert time.monotonic() < deadline, f"{self.name}: Redis still fails"


@contextlib.asynccontextmanager
async def _faces(url: str) -> AsyncIterator[list[Face]]:
    """A store failing open and one failing closed on ``url``, each asked sync and asyncio."""
    stores = [
        RedisStore.from_url(url, on_error=on_error, timeout=0.2) for on_error in ("open", "closed")
    ]
    try:
        yield [
            face
            for store in stores
            for face in (
                Face(f"{store.on_error}-sync", store, RateLimiter(store, algorithm="sliding_log")),
                Face(
                    f"{store.on_error}-async",
                    store,
                    AsyncRateLimiter(store, algorithm="sliding_log"),
                ),
            )
        ]
    finally:
        for store in stores:
            await _close(store)


async def _close(store: RedisStore) -> None:
    """Both faces of ``store`` closed."""
    store.close()
    await store.aclose()


def _counter(key: str) -> str:
    """The Redis key RedisStore keeps a RATE sliding-log counter of ``key`` under."""
    tagged = key if "{" in key else f"{{{key}}}"
    return f"rk:l60000:{tagged}"


def _summary(faces: list[Face]) -> list[tuple[str, int, int]]:
    return [(face.name, face.failed, face.through) for face in faces]


# -- Sentinel ----------------------------------------------------------------------------------


def test_a_sentinel_url_limits_exactly_on_the_master(
    redis_sentinel: RedisSentinel, redis_sentinel_url: str
) -> None:
    store = RedisStore.from_url(redis_sentinel_url, timeout=2.0)
    limiter = RateLimiter(store, algorithm="sliding_log")
    assert [limiter.hit("k", RATE).allowed for _ in range(LIMIT + 1)] == EXACT
    store.close()
    with redis_sentinel.master().client() as master:
        assert master.keys("rk:*") == [_counter("k").encode()]


async def test_a_sentinel_url_limits_exactly_on_the_master_with_asyncio(
    redis_sentinel: RedisSentinel, redis_sentinel_url: str
) -> None:
    store = RedisStore.from_url(redis_sentinel_url, timeout=2.0)
    limiter = AsyncRateLimiter(store, algorithm="sliding_log")
    assert [(await limiter.hit("k", RATE)).allowed for _ in range(LIMIT + 1)] == EXACT
    await _close(store)
    with redis_sentinel.master().client() as master:
        assert master.keys("rk:*") == [_counter("k").encode()]


def _sentinel_connections(setup: RedisSentinel, settle: float = 1.0) -> list[str]:
    """Connections to the Sentinels but their links to each other (named) and this query.

    Polled for up to ``settle`` seconds until there are none: a Sentinel sees a
    closed connection, or names a new link, within milliseconds.
    """
    deadline = time.monotonic() + settle
    while True:
        found = []
        for sentinel in setup.sentinels:
            with sentinel.client() as admin:
                for client in admin.client_list():
                    if not client["name"] and not client["cmd"].startswith("client"):
                        found.append(f"{sentinel.port} <- {client['addr']} ({client['cmd']})")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


async def test_closing_a_sentinel_store_closes_its_connections_to_the_sentinels(
    redis_sentinel: RedisSentinel, redis_sentinel_url: str
) -> None:
    assert _sentinel_connections(redis_sentinel) == []
    store = RedisStore.from_url(redis_sentinel_url, timeout=2.0)
    try:
        assert RateLimiter(store).hit("sync", RATE).allowed
        assert (await AsyncRateLimiter(store).hit("async", RATE)).allowed
        store.close()
        await store.aclose()
        assert _sentinel_connections(redis_sentinel) == []
    finally:
        await _close(store)


@pytest.fixture
def own_sentinel(redis_server_binary: Path, tmp_path: Path) -> Iterator[RedisSentinel]:
    """A master, its replica and 3 Sentinels of this test's own, to crash."""
    setup = RedisSentinel(redis_server_binary, directory=tmp_path / "sentinel")
    try:
        yield setup.start()
    finally:
        setup.close()


async def test_a_sentinel_failover_answers_per_on_error_then_limits_exactly_on_the_new_master(
    own_sentinel: RedisSentinel,
) -> None:
    async with _faces(own_sentinel.url) as faces:
        for face in faces:
            assert await face.pattern(f"before:{face.name}") == EXACT
        old = own_sentinel.master()
        replica = next(server for server in own_sentinel.servers if server is not old)
        old.stop()  # SIGKILL: a crash
        deadline = time.monotonic() + FAILOVER_DEADLINE
        for turn in itertools.count():
            address = own_sentinel.master_address()
            if address is not None and address[1] != old.port:
                break
            assert time.monotonic() < deadline, f"the Sentinels still name {address}"
            for face in faces:
                await face.hit_during_outage(f"down:{face.name}:{turn}")
        known = time.monotonic()

        assert own_sentinel.master() is replica
        with replica.client() as new_master:
            assert new_master.info("replication")["role"] == "master"
        assert all(face.failed for face in faces), _summary(faces)
        for face in faces:
            await face.until_through(f"probe:{face.name}", known + RECOVERY)
            assert await face.pattern(f"after:{face.name}") == EXACT
        assert time.monotonic() - known < RECOVERY
        with replica.client() as new_master:
            counters = [_counter(f"after:{face.name}") for face in faces]
            assert new_master.exists(*counters) == len(faces)


# -- Cluster -----------------------------------------------------------------------------------


def _tags(cluster: RedisCluster, owner: RedisServer, *, owned: bool, count: int) -> list[str]:
    """``count`` hash tags whose slot ``owner`` serves (``owned``), or ``count`` it does not.

    Slots come from the server (``CLUSTER KEYSLOT``), checked against redis-py's
    ``key_slot``; owners from the cluster's slot map.
    """
    tags: list[str] = []
    with cluster.client() as client:
        for index in itertools.count():
            tag = f"t{index}"
            slot = client.cluster_keyslot(_counter(f"{{{tag}}}:x"))
            assert slot == redis.cluster.key_slot(tag.encode())
            if (client.get_node_from_key(f"{{{tag}}}").port == owner.port) == owned:
                tags.append(tag)
                if len(tags) == count:
                    break
    return tags


@pytest.fixture
def own_cluster(redis_server_binary: Path, tmp_path: Path) -> Iterator[RedisCluster]:
    """3 masters with a replica each, of this test's own; a 1 s node timeout fails over fast."""
    cluster = RedisCluster(
        redis_server_binary,
        masters=3,
        replicas_per_master=1,
        node_timeout_ms=1000,
        directory=tmp_path / "cluster",
    )
    try:
        yield cluster.start()
    finally:
        cluster.close()


async def test_a_cluster_failover_answers_per_on_error_then_limits_exactly_on_the_promoted_replica(
    own_cluster: RedisCluster,
) -> None:
    victim = own_cluster.nodes[0]  # nodes[:3] are the masters a cluster is formed with
    masters = own_cluster.masters()
    assert victim in masters
    hot = _tags(own_cluster, victim, owned=True, count=3)
    cold = _tags(own_cluster, victim, owned=False, count=3)
    async with _faces(own_cluster.url) as faces:
        for face in faces:
            for tag in (hot[0], cold[0]):
                assert await face.pattern(f"{{{tag}}}:before:{face.name}") == EXACT
        victim.stop()  # SIGKILL: a crash
        deadline = time.monotonic() + FAILOVER_DEADLINE
        for turn in itertools.count():
            promoted = [node for node in own_cluster.masters() if node not in masters]
            problems = own_cluster.problems()  # CLUSTER INFO: state ok, all slots served
            if promoted and not problems:
                break
            assert time.monotonic() < deadline, problems or "no replica was promoted"
            for face in faces:
                for tag in (hot[turn % len(hot)], cold[turn % len(cold)]):
                    await face.hit_during_outage(f"{{{tag}}}:down:{face.name}:{turn}")
        known = time.monotonic()

        assert len(promoted) == 1
        assert all(face.failed for face in faces), _summary(faces)
        for face in faces:
            await face.until_through(f"{{{hot[0]}}}:probe:{face.name}", known + RECOVERY)
        # timed to the last face through, not including the checks below (on a loaded
        # machine they alone took longer than the recovery they check)
        assert time.monotonic() - known < RECOVERY
        for face in faces:
            for tag in hot + cold:
                assert await face.pattern(f"{{{tag}}}:after:{face.name}") == EXACT
        with promoted[0].client() as new_master:  # the failed master's slots live here now
            counters = [_counter(f"{{{tag}}}:after:{face.name}") for tag in hot for face in faces]
            assert all(new_master.exists(counter) for counter in counters)


@pytest.fixture
def lone_masters(redis_server_binary: Path, tmp_path: Path) -> Iterator[RedisCluster]:
    """3 masters without replicas: one crashed leaves its slots unserved, the cluster down."""
    cluster = RedisCluster(
        redis_server_binary,
        masters=3,
        node_timeout_ms=500,
        directory=tmp_path / "cluster",
    )
    try:
        yield cluster.start()
    finally:
        cluster.close()


def test_while_a_cluster_is_down_a_decision_answers_per_on_error_within_a_second(
    lone_masters: RedisCluster,
) -> None:
    victim, survivor = lone_masters.nodes[:2]
    hot = _tags(lone_masters, victim, owned=True, count=1)[0]
    cold = _tags(lone_masters, victim, owned=False, count=1)[0]
    stores = [
        RedisStore.from_url(lone_masters.url, on_error=on_error, timeout=0.2)
        for on_error in ("open", "closed")
    ]
    limiters = [RateLimiter(store, algorithm="sliding_log") for store in stores]
    try:
        for limiter in limiters:
            assert limiter.hit(f"{{{cold}}}:warm", RATE).allowed  # slot map, script loaded
        victim.stop()
        deadline = time.monotonic() + FAILOVER_DEADLINE
        while lone_masters.state(survivor) != "fail":  # the survivors agree it is gone
            assert time.monotonic() < deadline, "the cluster never noticed its lost master"
            time.sleep(0.02)
        for limiter, store in zip(limiters, stores, strict=True):
            for tag in (cold, hot):  # a live master's slot (CLUSTERDOWN), the dead one's
                start = time.monotonic()
                decision = limiter.hit(f"{{{tag}}}:down", RATE)
                elapsed = time.monotonic() - start
                if store.on_error == "open":
                    assert decision.allowed
                else:
                    assert (decision.allowed, decision.retry_after) == (False, 1.0)
                assert elapsed < 1.0, f"{store.on_error}, {{{tag}}}: {elapsed:.2f} s"
    finally:
        for store in stores:
            store.close()

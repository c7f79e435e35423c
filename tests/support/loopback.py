"""Servers on loopback for the tests: a process on a free port, an ASGI app in a thread.

:class:`LoopbackProcess` runs one server binary (nginx, Caddy, the decision
service) on a free port of 127.0.0.1, in a directory of its own that holds
its configuration and its log (kept there for a look after a failure). It is
ready when the port accepts connections; a server that exits first because
its port was taken meanwhile is started again on another port, any other
exit is an error quoting the tail of its log. No orphans: :meth:`stop` in the
fixtures' finalizers (after failures and Ctrl-C too), an ``atexit`` hook for
whatever is left, and on Linux ``PR_SET_PDEATHSIG``, so the kernel kills the
server if pytest itself is killed.

:class:`ThreadedServer` serves an ASGI app with uvicorn in a thread of the
test process, on a socket bound before the thread starts (no port race), so
a test can look at what the app received.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import pytest
import uvicorn

__all__ = [
    "HOST",
    "LoopbackProcess",
    "LoopbackProcessError",
    "ThreadedServer",
    "free_port",
    "require_binary",
]

#: every test server listens here, and only here
HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_PORT_TAKEN = ("address already in use", "address in use")

try:
    _libc: Any = ctypes.CDLL(None, use_errno=True)
    _libc.prctl  # noqa: B018 - only Linux has it
except (OSError, AttributeError):
    _libc = None

#: processes still running, killed by the atexit hook if nobody stopped them
_RUNNING: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_RUNNING):
        with contextlib.suppress(OSError):
            process.kill()


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        """Runs in the child before exec: the kernel SIGKILLs it when its parent dies."""
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
            if os.getppid() != parent:  # died before prctl: nobody would send the signal
                os._exit(1)

    return preexec


def free_port() -> int:
    """A port of :data:`HOST` nobody listens on (a server started on it retries if taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def require_binary(found: Path | None, what: str, install: str) -> Path:
    """``found``, else skip the test outside CI, or fail it in CI (``CI=true``).

    A CI run must not go green by skipping the tests of a proxy it was told
    to install (``.ci/run`` installs them first).
    """
    if found is not None:
        return found
    message = f"{what} is not installed ({install})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}: CI=true, so this fails instead of skipping")
    pytest.skip(message)


class LoopbackProcessError(RuntimeError):
    """A server did not start (its log's tail is in the message)."""


class LoopbackProcess:
    """One server process on a free port of 127.0.0.1, configured for that port.

    ``command(port, directory)`` writes whatever configuration the server
    needs into ``directory`` and returns its argv; it is called again with a
    new port when the first one was taken. ``env``: added to the test's
    environment. :meth:`stop` (SIGTERM, then SIGKILL after ``stop_timeout``)
    and :meth:`start` again are allowed.
    """

    def __init__(
        self,
        name: str,
        command: Callable[[int, Path], list[str]],
        directory: Path,
        *,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.command = command
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def __repr__(self) -> str:
        state = f"pid {self._process.pid}" if self.running else "stopped"
        return f"<LoopbackProcess {self.name} {HOST}:{self.port} {state}>"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines its log got since the last start."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        if self.running:
            return self
        for _ in range(5):
            self.port = free_port()
            argv = self.command(self.port, self.directory)
            if self._launch(argv):
                return self
            if not any(taken in self.log_tail().lower() for taken in _PORT_TAKEN):
                break
        raise LoopbackProcessError(
            f"{self.name} did not start on {self.address} (exit status "
            f"{self._process.returncode if self._process else None}); "
            f"its log ({self.log_path}) ends:\n{self.log_tail()}"
        )

    def _launch(self, argv: list[str]) -> bool:
        """Start ``argv``; whether it accepts connections before it exits or times out."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            # PDEATHSIG fires when the *thread* that forked exits: fixtures run in the main one
            process = subprocess.Popen(  # noqa: S603 - a test server's argv, built here
                argv,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                preexec_fn=_die_with(os.getpid()),
            )
        self._process = process
        _RUNNING.add(process)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                _RUNNING.discard(process)
                return False
            if _accepts(self.port):
                return True
            time.sleep(0.02)
        self.stop()
        raise LoopbackProcessError(
            f"{self.name} did not listen on {self.address} within {self.startup_timeout} s; "
            f"its log ({self.log_path}) ends:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _RUNNING.discard(process)
        self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ThreadedServer:
    """An ASGI app served by uvicorn in a thread of the test process, on loopback.

    The socket is bound (on a free port) before the thread starts, so the
    server is addressable at once and no other process can take its port.
    """

    def __init__(self, app: Any, *, startup_timeout: float = 10.0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((HOST, 0))
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self.startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise LoopbackProcessError(f"uvicorn did not start on {self.address}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

"""Running the gateway under uvicorn, and beside it the admin app when there is one.

``ratekeeper proxy`` calls :func:`run_gateway`: one event loop, one uvicorn
server per listener (the gateway; the service's app on ``--admin-port``).
SIGINT and SIGTERM stop every listener gracefully: no new connections,
requests in flight get :data:`GRACE` seconds to finish (a streamed response
included), then the upstream pool is closed (the gateway's lifespan). SIGHUP
calls ``on_hangup`` (a policy reload). The servers run with uvicorn's
``proxy_headers`` off (the policy's trusted proxies decide whom to believe,
in the middleware) and without uvicorn's own ``Server`` and ``Date`` fields
(the upstream's pass through; uvicorn would add a second copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn

__all__ = ["GRACE", "Listener", "run_gateway", "startup_lines"]

#: seconds requests in flight get to finish at shutdown
GRACE = 10


@dataclass(frozen=True)
class Listener:
    """An ASGI app to serve on ``host:port`` (``port`` 0: a free one)."""

    app: Any
    host: str
    port: int
    lifespan: Literal["auto", "on", "off"] = "on"


def startup_lines(urls: Sequence[str], upstream: str, *, admin: bool) -> list[str]:
    """What ``ratekeeper proxy`` prints once it listens: where, in front of what, and the admin."""
    lines = [
        f"ratekeeper proxy: listening on {urls[0]}",
        f"  upstream       {upstream} (every path goes there)",
    ]
    if admin:
        lines.append(
            f"  admin          {urls[1]}: admin API /admin/, dashboard /dashboard (both with "
            "an admin token), metrics /metrics, /healthz"
        )
    else:
        lines.append(
            "  admin          none: this proxy serves no admin API, metrics or dashboard "
            "(--admin-port N serves them)"
        )
    return lines


class _Server(uvicorn.Server):
    """A uvicorn server whose signals :func:`run_gateway` handles, for all its servers at once.

    uvicorn's own handling is per server and raises the signal again once it
    has stopped, which would end the process before the others finish.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _base_url(server: uvicorn.Server) -> str:
    sock: socket.socket = server.servers[0].sockets[0]
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def run_gateway(
    listeners: Sequence[Listener],
    *,
    on_started: Callable[[list[str]], None],
    on_hangup: Callable[[], Awaitable[object]] | None = None,
    log_level: str = "info",
) -> int:
    """Serve every listener until SIGINT/SIGTERM; ``on_started`` gets their base URLs, in order.

    Returns the exit status: 0 after a graceful stop, 1 when a listener could
    not start (its port taken: uvicorn logs why).
    """
    servers = [
        _Server(
            uvicorn.Config(
                listener.app,
                host=listener.host,
                port=listener.port,
                lifespan=listener.lifespan,
                log_level=log_level,
                access_log=False,
                proxy_headers=False,
                server_header=False,
                date_header=False,
                timeout_graceful_shutdown=GRACE,
            )
        )
        for listener in listeners
    ]
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    installed: list[signal.Signals] = []
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                return 1
            await asyncio.sleep(0.01)
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(number, stop)
                installed.append(number)
            if on_hangup is not None:
                loop.add_signal_handler(signal.SIGHUP, lambda: _spawn(on_hangup()))
                installed.append(signal.SIGHUP)
        on_started([_base_url(server) for server in servers])
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()  # one listener stopped: so do the others
        await asyncio.gather(*tasks, return_exceptions=True)
        return 0
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


_pending: set[asyncio.Future[object]] = set()


def _spawn(awaitable: Awaitable[object]) -> None:
    """Run ``awaitable`` in the background, keeping a reference until it is done."""
    future = asyncio.ensure_future(awaitable)
    _pending.add(future)
    future.add_done_callback(_pending.discard)

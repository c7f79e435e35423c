"""An ASGI app under a real uvicorn on a free loopback port, in the caller's event loop.

    async with serving(app) as url:          # "http://127.0.0.1:PORT"
        ...

The server runs as a task of the running loop (no thread): a test can hold a
response open on an :class:`asyncio.Event` and read the app's records
directly. ``TCP_NODELAY`` is set on the listening socket (accepted sockets
inherit it): uvicorn sets it only on sockets it binds itself, and without it
a response written in two pieces waits for the client's delayed ACK (40 ms a
request). ``proxy_headers`` is off, as ``ratekeeper proxy`` runs: the policy,
not the server, decides which forwarding headers to believe; no ``Server`` or
``Date`` fields, so every field a client gets is the app's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["free_port", "serving"]


def free_port() -> int:
    """A loopback port nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: Any, *, lifespan: str = "on") -> AsyncIterator[str]:
    """``app`` under uvicorn on 127.0.0.1 for the block; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        ws="none",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.001)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()

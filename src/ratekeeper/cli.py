"""The ``ratekeeper`` command: a thin shell over the library.

ratekeeper policy check FILE       validate a policy and summarise it
ratekeeper check --policy FILE ... decide requests against a policy, locally
ratekeeper proxy --upstream URL    the gateway in front of an API (docs/gateway.md)
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from . import __version__
from .limiter import Limiter
from .policy import PolicyError, load_policy
from .policy.summary import describe_policy
from .stores.memory import MemoryStore

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ratekeeper")
def main() -> None:
    """API rate limiting as providers document it."""


@main.group()
def policy() -> None:
    """Work with policy files."""


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when the policy is valid.")
def policy_check(files: tuple[str, ...], quiet: bool) -> None:
    """Validate policy FILES; exit 1 with file:line: field: reason on the first error."""
    failed = False
    for file in files:
        try:
            loaded = load_policy(file)
        except PolicyError as error:
            click.echo(f"error: {error}", err=True)
            failed = True
            continue
        if not quiet:
            click.echo(f"{file}: ok")
            for line in describe_policy(loaded):
                click.echo(line)
    if failed:
        sys.exit(1)


def _parse_header(text: str) -> tuple[str, str]:
    name, separator, value = text.partition(":")
    if not separator or not name.strip():
        raise click.BadParameter(f"expected 'Name: value', got {text!r}", param_hint="--header")
    return name.strip(), value.strip()


@main.command("check")
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False))
@click.option("--method", "-X", default="GET", show_default=True)
@click.option("--path", required=True, help="Request path, e.g. /api/scans")
@click.option("--header", "-H", "headers", multiple=True, help="'Name: value'; repeatable.")
@click.option("--ip", "client_ip", default="127.0.0.1", show_default=True, help="Client IP.")
@click.option("--cost", default=1, show_default=True, type=int)
@click.option("--repeat", "-n", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per decision.")
def check(
    policy_file: str,
    method: str,
    path: str,
    headers: tuple[str, ...],
    client_ip: str,
    cost: int,
    repeat: int,
    as_json: bool,
) -> None:
    """Decide a request (or --repeat N of them) against a policy, with an in-memory store."""
    try:
        limiter = Limiter(load_policy(policy_file), store=MemoryStore())
    except PolicyError as error:
        raise click.ClickException(str(error)) from None
    header_map = dict(_parse_header(text) for text in headers)
    for number in range(1, repeat + 1):
        try:
            decision = limiter.check(
                method=method, path=path, headers=header_map, client_ip=client_ip, cost=cost
            )
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        body = decision.body.decode() if decision.body is not None else None
        if as_json:
            record = {
                "request": number,
                "status": decision.status_code,
                "allowed": decision.allowed,
                "category": decision.category,
                "plan": decision.plan,
                "headers": decision.headers,
                "body": json.loads(body) if body else None,
            }
            click.echo(json.dumps(record))
            continue
        verdict = "allowed" if decision.allowed else "refused"
        click.echo(
            f"#{number} {decision.status_code} {verdict}  category={decision.category} "
            f"plan={decision.plan}"
        )
        for name, value in decision.headers.items():
            click.echo(f"  {name}: {value}")
        if body:
            click.echo(f"  body: {body}")


@main.command("proxy")
@click.option("--upstream", required=True, help="The API behind the gateway: http://HOST:PORT.")
@click.option(
    "--policy", "policy_file", type=click.Path(dir_okay=False), help="Default: the built-in one."
)
@click.option("--store", default="memory://", show_default=True, help="memory:// or a Redis URL.")
@click.option(
    "--registry",
    help="Registry of API keys: sqlite:///FILE or postgresql://...; 'none' for none. "
    "Default: sqlite:///ratekeeper.sqlite3.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait on the upstream (connect, send, each read) before a 504.",
)
@click.option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    help="Serve the admin API, metrics and dashboard on this port (same --host).",
)
@click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False),
    help="Bearer token of the admin API (or $RATEKEEPER_ADMIN_TOKEN); none: admin API off.",
)
@click.option("--preserve-host", is_flag=True, help="Send the client's Host to the upstream.")
@click.option(
    "--max-body-size",
    type=click.IntRange(min=0),
    help="Refuse request bodies over this many bytes (413). Default: no limit.",
)
def proxy(
    upstream: str,
    policy_file: str | None,
    store: str,
    registry: str | None,
    host: str,
    port: int,
    timeout: float,
    admin_port: int | None,
    admin_token_file: str | None,
    preserve_host: bool,
    max_body_size: int | None,
) -> None:
    """Run the gateway: every request goes to --upstream, the policy enforced in front."""
    try:
        import asyncio

        from .gateway import Gateway, ProxyApp
        from .gateway.run import Listener, run_gateway, startup_lines
    except ModuleNotFoundError as error:
        raise click.ClickException(
            f"the gateway needs the server extra (pip install 'ratekeeper[server]'): {error}"
        ) from None
    try:
        proxy_app = ProxyApp(
            upstream, timeout=timeout, preserve_host=preserve_host, max_body_size=max_body_size
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--upstream") from None
    service, check_token = _proxy_service(policy_file, store, registry, admin_token_file)
    gateway = Gateway(proxy_app, service.limiter, follow=lambda: service.limiter)
    listeners = [Listener(gateway, host, port)]
    admin = _admin_app(service, check_token) if admin_port is not None else None
    if admin is not None and admin_port is not None:
        listeners.append(Listener(admin, host, admin_port, lifespan="off"))

    def started(urls: list[str]) -> None:
        for line in startup_lines(urls, proxy_app.upstream, admin=admin is not None):
            click.echo(line)

    async def run() -> int:
        service.start()
        try:
            return await run_gateway(
                listeners, on_started=started, on_hangup=lambda: _reload(service)
            )
        finally:
            await service.close()

    sys.exit(asyncio.run(run()))


def _proxy_service(
    policy_file: str | None,
    store: str,
    registry: str | None,
    admin_token_file: str | None,
) -> tuple[Any, str | None]:
    """The service state the gateway decides with: ``ratekeeper.server.service.Service``.

    Policy, store, registry (its watcher gives the limiter the registry's keys)
    and reloads are the service's, as for ``serve``; the gateway follows its
    current limiter. With it, the check token the service's app requires
    (``$RATEKEEPER_CHECK_TOKEN``) for ``--admin-port``. HOOK(server): until
    helper S's ``ratekeeper.server`` is installed, a stand-in on ``--policy``
    and ``--store`` alone.
    """
    try:
        settings_module = importlib.import_module("ratekeeper.server.settings")
        service_module = importlib.import_module("ratekeeper.server.service")
    except ModuleNotFoundError:
        return _StandInService(policy_file, store, registry), None
    try:
        settings = settings_module.Settings.from_options(
            policy=policy_file, store=store, registry=registry, admin_token_file=admin_token_file
        )
        return service_module.Service.open(settings), settings.check_token
    except (ValueError, OSError) as error:  # SettingsError, PolicyError, an unreadable file
        raise click.ClickException(str(error)) from None


class _StandInService:
    """HOOK(server): the gateway's policy and store without ``ratekeeper.server``."""

    def __init__(self, policy_file: str | None, store: str, registry: str | None) -> None:
        from .limiter import AsyncLimiter
        from .stores import RedisStore

        if policy_file is None:
            raise click.UsageError("--policy is needed: the built-in policy comes with the service")
        if registry not in (None, "none"):
            raise click.UsageError("--registry needs the service (ratekeeper.server)")
        try:
            opened = (
                MemoryStore() if store in ("memory", "memory://") else RedisStore.from_url(store)
            )
            self.limiter = AsyncLimiter(load_policy(policy_file), opened)
        except (ValueError, OSError) as error:
            raise click.ClickException(str(error)) from None
        self.admin_token: str | None = None

    def start(self) -> None:
        """No registry to follow."""

    async def close(self) -> None:
        """Nothing opened but the store, closed with the process."""

    async def reload_policy(self, *, actor: str) -> list[str]:
        return ["policy reloads need the service (ratekeeper.server)"]


def _admin_app(service: Any, check_token: str | None) -> Any | None:
    """The service's app for ``--admin-port`` (``ratekeeper.server.app.build_app``), or ``None``.

    HOOK(server): ``None`` (and a line saying so) until it is installed.
    """
    try:
        app_module = importlib.import_module("ratekeeper.server.app")
    except ModuleNotFoundError:
        click.echo(
            "ratekeeper proxy: the admin API is unavailable (ratekeeper.server is not installed)"
        )
        return None
    return app_module.build_app(service, admin_token=service.admin_token, check_token=check_token)


async def _reload(service: Any) -> None:
    """SIGHUP: load the policy file again; the gateway follows the service's new limiter."""
    errors = await service.reload_policy(actor="sighup")
    for error in errors:
        click.echo(f"ratekeeper proxy: policy reload refused: {error}", err=True)

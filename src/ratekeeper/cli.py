"""The ``ratekeeper`` command: a thin shell over the library.

ratekeeper policy check FILE       validate a policy and summarise it
ratekeeper check --policy FILE ... decide requests against a policy, locally
ratekeeper keys create|list|revoke|set-plan   API keys of the registry
ratekeeper serve [--policy FILE]   the decision service (docs/service.md)
ratekeeper proxy --upstream URL    the gateway in front of an API (docs/gateway.md)
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
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


class _KeysGroup(click.Group):
    """``keys``: any error, a usage error too, exits 1 with its message on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            error.show()
            ctx.exit(1)


@main.group(cls=_KeysGroup)
def keys() -> None:
    """API keys of the registry (ratekeeper serve --registry): create, list, revoke, set-plan."""


_registry_option = click.option(
    "--registry",
    "registry_url",
    default="sqlite:///./ratekeeper.sqlite3",  # ratekeeper.registry.DEFAULT_REGISTRY, unimported
    show_default=True,
    help="sqlite:///FILE or postgresql://user@host/db",
)
_policy_option = click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="The service's policy file. Default: the built-in one (plans anonymous, default).",
)


def _open_registry(url: str) -> Any:
    """The registry at ``url``: any trouble (no extra, no database) is a clear exit 1."""
    try:
        from .registry import Registry, RegistryError
    except ModuleNotFoundError as error:
        raise click.ClickException(
            f"keys need the server extra (pip install 'ratekeeper[server]'): {error}"
        ) from None
    try:
        return Registry.open(url)
    except RegistryError as error:
        raise click.ClickException(str(error)) from None
    except ModuleNotFoundError as error:  # psycopg for postgresql://
        raise click.ClickException(
            f"{error}: PostgreSQL needs the postgres extra (pip install 'ratekeeper[postgres]')"
        ) from None


def _key_policy(policy_file: str | None) -> Any:
    """The policy keys are checked against: ``--policy``, else the service's built-in one."""
    from .server.settings import default_policy_path

    path = policy_file or default_policy_path()
    try:
        return load_policy(path)
    except PolicyError as error:
        raise click.ClickException(str(error)) from None


@contextlib.contextmanager
def _keys_call(url: str) -> Iterator[Any]:
    """The registry for one command, closed after it; its refusals exit 1 with their message."""
    from .registry import RegistryError

    registry = _open_registry(url)
    try:
        yield registry
    except RegistryError as error:
        raise click.ClickException(str(error)) from None
    finally:
        registry.close()


@keys.command("create")
@click.option("--plan", required=True, help="A plan of the policy.")
@click.option("--name", default="", help="Who the key is for.")
@click.option("--id", "key_id", help="Names its counters. Default: a new k-... id.")
@click.option("--user", help="The user the key belongs to (limits counted by user).")
@click.option("--limit", "limits", multiple=True, help="Its own limit: api=100/minute; repeatable.")
@_registry_option
@_policy_option
def keys_create(
    plan: str,
    name: str,
    key_id: str | None,
    user: str | None,
    limits: tuple[str, ...],
    registry_url: str,
    policy_file: str | None,
) -> None:
    """Create a key and print it, once, on stdout (only its SHA-256 is stored)."""
    from .registry import cli_actor, parse_limits

    policy = _key_policy(policy_file)
    with _keys_call(registry_url) as registry:
        record, raw = registry.create_key(
            policy=policy, plan=plan, name=name, key_id=key_id, user=user,
            limits=parse_limits(limits), actor=cli_actor(),
        )  # fmt: skip
    click.echo(raw)
    click.echo(
        f"created key {record.id} (plan {record.plan}); it is shown this once: store it now",
        err=True,
    )


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Revoked keys too.")
@_registry_option
def keys_list(include_revoked: bool, registry_url: str) -> None:
    """List the registry's keys (never the keys themselves)."""
    from .registry import key_table

    with _keys_call(registry_url) as registry:
        records = registry.list_keys(include_revoked=include_revoked)
    for line in key_table(records):
        click.echo(line)


@keys.command("revoke")
@click.argument("key_id")
@_registry_option
def keys_revoke(key_id: str, registry_url: str) -> None:
    """Revoke KEY_ID: every service refuses it within a second."""
    from .registry import cli_actor

    with _keys_call(registry_url) as registry:
        registry.revoke(key_id, actor=cli_actor())
    click.echo(f"revoked key {key_id}")


@keys.command("set-plan")
@click.argument("key_id")
@click.argument("plan")
@_registry_option
@_policy_option
def keys_set_plan(key_id: str, plan: str, registry_url: str, policy_file: str | None) -> None:
    """Move KEY_ID to PLAN (a plan of the policy)."""
    from .registry import cli_actor

    policy = _key_policy(policy_file)
    with _keys_call(registry_url) as registry:
        before = registry.get_key(key_id)
        registry.set_plan(key_id, plan, policy=policy, actor=cli_actor())
    was = f" (was {before.plan})" if before is not None else ""
    click.echo(f"key {key_id}: plan {plan}{was}")


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


def _service_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options ``serve`` and ``proxy`` share: policy, store, registry, where to listen."""
    options = [
        click.option(
            "--policy",
            "policy_file",
            type=click.Path(dir_okay=False),
            help="Default: the built-in one.",
        ),
        click.option(
            "--store", default="memory://", show_default=True, help="memory:// or a Redis URL."
        ),
        click.option(
            "--registry",
            help="Registry of API keys: sqlite:///FILE or postgresql://...; 'none' for none. "
            "Default: sqlite:///ratekeeper.sqlite3.",
        ),
        click.option("--host", default="127.0.0.1", show_default=True),
        click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535)),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command("serve")
@_service_options
@click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False),
    help="Bearer token of the admin API (or $RATEKEEPER_ADMIN_TOKEN); none: admin API off.",
)
@click.option(
    "--check-token-file",
    type=click.Path(dir_okay=False),
    help="Bearer token /v1/* requires (or $RATEKEEPER_CHECK_TOKEN); none: open.",
)
@click.option(
    "--metrics-token-file",
    type=click.Path(dir_okay=False),
    help="Bearer token /metrics requires (or $RATEKEEPER_METRICS_TOKEN); none: open.",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False),
    help="Secret sealing lease handles (or $RATEKEEPER_SECRET); share it between replicas.",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    help="Serve Envoy's rate limit service (gRPC, envoy.service.ratelimit.v3) on this port "
    "(same --host); needs the envoy extra. Default: off.",
)
@click.option(
    "--envoy-config",
    type=click.Path(exists=True),
    help="Serve an envoyproxy/ratelimit YAML config (domain, descriptors), or a directory of "
    "them (one domain each), instead of a policy (docs/envoy.md).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Reload the policy (or --envoy-config) when its files change, as SIGHUP does.",
)
@click.option("--smoke", is_flag=True, help="Start on a free port, answer one /v1/check, exit.")
def serve(
    policy_file: str | None,
    store: str,
    registry: str | None,
    host: str,
    port: int,
    admin_token_file: str | None,
    check_token_file: str | None,
    metrics_token_file: str | None,
    secret_file: str | None,
    grpc_port: int | None,
    envoy_config: str | None,
    watch: bool,
    smoke: bool,
) -> None:
    """Run the decision service: /v1/check, /v1/authorize, /admin, /healthz, /metrics."""
    try:
        import asyncio

        from .server.run import serve as run_service
        from .server.settings import Settings, SettingsError
    except ModuleNotFoundError as error:
        raise click.ClickException(
            f"the service needs the server extra (pip install 'ratekeeper[server]'): {error}"
        ) from None
    try:
        settings = Settings.from_options(
            policy=policy_file,
            store=store,
            registry=registry,
            host=host,
            port=port,
            admin_token_file=admin_token_file,
            check_token_file=check_token_file,
            metrics_token_file=metrics_token_file,
            secret_file=secret_file,
            grpc_port=grpc_port,
            envoy_config=envoy_config,
            watch=watch,
        )
        status = asyncio.run(run_service(settings, smoke=smoke, echo=click.echo))
    except (SettingsError, PolicyError) as error:
        raise click.ClickException(str(error)) from None
    sys.exit(status)


@main.command("proxy")
@click.option("--upstream", required=True, help="The API behind the gateway: http://HOST:PORT.")
@_service_options
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
    """The service state the gateway decides with (:class:`ratekeeper.server.service.Service`).

    Policy, store, registry (its watcher gives the limiter the registry's keys)
    and reloads are the service's, as for ``serve``; the gateway follows its
    current limiter. With it, the check token the service's app requires
    (``$RATEKEEPER_CHECK_TOKEN``) for ``--admin-port``.
    """
    from .server.service import Service
    from .server.settings import Settings

    try:
        settings = Settings.from_options(
            policy=policy_file, store=store, registry=registry, admin_token_file=admin_token_file
        )
        return Service.open(settings), settings.check_token
    except (ValueError, OSError) as error:  # SettingsError, PolicyError, an unreadable file
        raise click.ClickException(str(error)) from None


def _admin_app(service: Any, check_token: str | None) -> Any:
    """The service's app for ``--admin-port``: admin API, metrics, health, decisions."""
    from .server.app import build_app

    return build_app(service, admin_token=service.admin_token, check_token=check_token)


async def _reload(service: Any) -> None:
    """SIGHUP: load the policy file again; the gateway follows the service's new limiter."""
    errors = await service.reload_policy(actor="sighup")
    for error in errors:
        click.echo(f"ratekeeper proxy: policy reload refused: {error}", err=True)

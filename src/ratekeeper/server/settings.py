"""What ``ratekeeper serve`` is told: options, environment, secret files, and the defaults.

One place reads the environment and the files holding tokens and secrets, so
the CLI stays a thin shell and tests build a :class:`Settings` directly.
Tokens and secrets never appear in a ``repr`` or a log line.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ADMIN_TOKEN_ENV",
    "CHECK_TOKEN_ENV",
    "DEFAULT_POLICY",
    "DEFAULT_REGISTRY",
    "SECRET_ENV",
    "Settings",
    "SettingsError",
    "default_policy_path",
    "read_secret",
    "registry_installed",
]

#: the admin API's bearer token (else ``--admin-token-file``; neither: the admin API is off)
ADMIN_TOKEN_ENV = "RATEKEEPER_ADMIN_TOKEN"  # noqa: S105 (a variable's name)
#: the bearer token ``/v1/*`` requires (else ``--check-token-file``; neither: open)
CHECK_TOKEN_ENV = "RATEKEEPER_CHECK_TOKEN"  # noqa: S105 (a variable's name)
#: the bearer token ``/metrics`` requires (else ``--metrics-token-file``; neither: open)
METRICS_TOKEN_ENV = "RATEKEEPER_METRICS_TOKEN"  # noqa: S105 (a variable's name)
#: the secret sealing lease handles (else ``--secret-file``; neither: random per process)
SECRET_ENV = "RATEKEEPER_SECRET"  # noqa: S105 (a variable's name)
#: what ``--policy`` names when not given: the built-in policy (docs/service.md)
DEFAULT_POLICY = "default_policy.yaml"
#: where the registry of API keys lives when ``--registry`` is not given
DEFAULT_REGISTRY = "sqlite:///ratekeeper.sqlite3"
#: a secret shorter than this is refused (``LeaseSeal`` wants 16 bytes)
_SHORTEST_SECRET = 16


class SettingsError(ValueError):
    """An option, a variable or a file the service cannot start with; says which."""


def registry_installed() -> bool:
    """Is the registry of API keys (``ratekeeper.registry``) part of this installation?"""
    return importlib.util.find_spec("ratekeeper.registry") is not None


def hide_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (for logs and reprs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def default_policy_path() -> Path:
    """The built-in policy file, shipped in this package."""
    return Path(str(resources.files(__package__).joinpath(DEFAULT_POLICY)))


def read_secret(path: str | Path, what: str) -> str:
    """The first line of the file at ``path`` (a token or a secret), trailing newline dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"cannot read the {what} file {str(path)!r}: {error}") from None
    value = text.splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise SettingsError(f"the {what} file {str(path)!r} is empty")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a service is started with; ``repr`` hides the tokens and the secret.

    ``policy`` ``None``: the built-in policy. ``registry`` ``None``: no
    registry (:meth:`from_options` gives :data:`DEFAULT_REGISTRY` when the
    registry package is installed, unless told ``none``).
    ``secret`` ``None``: a random secret of this process, so a lease handle is
    released only by the replica that made it.
    """

    policy: str | None = None
    store: str = field(default="memory://", repr=False)
    registry: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: str | None = field(default=None, repr=False)
    check_token: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)
    secret: bytes | None = field(default=None, repr=False)
    #: Envoy's rate limit service over gRPC on this port (same host); ``None``: off
    grpc_port: int | None = None
    #: ``policy`` is an envoyproxy/ratelimit config (``--envoy-config``), not a policy
    envoy_config: bool = False
    #: reload the policy when its file (or directory) changes (``--watch``)
    watch: bool = False

    @property
    def shown_store(self) -> str:
        """The store's URL fit for messages: its password hidden."""
        return hide_password(self.store)

    @property
    def shown_registry(self) -> str:
        """The registry's URL fit for messages (``none`` without one): its password hidden."""
        return hide_password(self.registry) if self.registry else "none"

    def __repr__(self) -> str:
        return (
            f"Settings(policy={self.policy!r}, store={self.shown_store!r}, "
            f"registry={self.shown_registry!r}, host={self.host!r}, port={self.port!r})"
        )

    @classmethod
    def from_options(
        cls,
        *,
        policy: str | None = None,
        store: str | None = None,
        registry: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        admin_token_file: str | None = None,
        check_token_file: str | None = None,
        metrics_token_file: str | None = None,
        secret_file: str | None = None,
        grpc_port: int | None = None,
        envoy_config: str | None = None,
        watch: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from command-line options, the files they name and the environment.

        A file named by an option wins over its environment variable.
        ``registry`` ``None``: :data:`DEFAULT_REGISTRY` when the registry is
        installed; ``"none"``: no registry.
        """
        if envoy_config is not None and policy is not None:
            raise SettingsError("give --policy or --envoy-config, not both")
        if registry is None:
            registry = DEFAULT_REGISTRY if registry_installed() else None
        elif registry == "none":
            registry = None
        env = os.environ if environ is None else environ
        admin = (
            read_secret(admin_token_file, "admin token")
            if admin_token_file
            else env.get(ADMIN_TOKEN_ENV) or None
        )
        check = (
            read_secret(check_token_file, "check token")
            if check_token_file
            else env.get(CHECK_TOKEN_ENV) or None
        )
        metrics = (
            read_secret(metrics_token_file, "metrics token")
            if metrics_token_file
            else env.get(METRICS_TOKEN_ENV) or None
        )
        secret_text = read_secret(secret_file, "secret") if secret_file else env.get(SECRET_ENV)
        secret = secret_text.encode("utf-8") if secret_text else None
        if secret is not None and len(secret) < _SHORTEST_SECRET:
            raise SettingsError(f"the lease secret needs at least {_SHORTEST_SECRET} bytes")
        return cls(
            policy=envoy_config if envoy_config is not None else policy,
            store=store or "memory://",
            registry=registry,
            host=host,
            port=port,
            admin_token=admin,
            check_token=check,
            metrics_token=metrics,
            secret=secret,
            grpc_port=grpc_port,
            envoy_config=envoy_config is not None,
            watch=watch,
        )

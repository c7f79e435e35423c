"""The running service's state, shared by every route: policy, limiter, store, registry, seal.

The decision API, forward-auth and the admin API read the service's current
``policy`` and ``limiter`` once per request; :meth:`Service.reload_policy`
replaces both together (one assignment of the pair), on the same store, so a
request is decided wholly by the old policy or wholly by the new one and no
counter is lost. A reload that cannot be applied (a file that does not load,
a policy dropping a plan the registry's keys still use, a policy the store
cannot serve) changes nothing and says why.

Keys from the registry reach the limiter through ``limiter.use_keys``: its
watcher pushes every new snapshot, and a reload gives the new limiter the
current one before it takes over.

With a registry, usage analytics are on (``service.recorder``, a
:class:`~ratekeeper.server.analytics.UsageRecorder`): every decision is counted
in memory, flushed every second by its thread (started by :meth:`Service.start`)
and rolled up every minute; :meth:`Service.close` flushes the rest before the
registry closes, so a graceful shutdown (SIGTERM) loses no count. The recorder
also writes the audit rows of blocks that responses start and of the store
failing and recovering (docs/analytics.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine import BlockHook, DecisionHook, LeaseSeal
from ..limiter import AsyncLimiter
from ..policy import KeyEntry, Policy, PolicyError, load_policy
from ..registry import Registry, Watcher
from ..stores import MemoryStore, RedisStore, Store
from .analytics import UsageRecorder
from .metrics import ServiceMetrics
from .settings import Settings, SettingsError, default_policy_path

__all__ = ["Service", "open_registry", "open_store"]

_log = logging.getLogger("ratekeeper.server")


def open_store(url: str) -> Store:
    """The store ``url`` names: ``memory://``, or a Redis URL (``RedisStore.from_url`` forms)."""
    if url in ("memory", "memory://"):
        return MemoryStore()
    try:
        return RedisStore.from_url(url)
    except ValueError as error:
        raise SettingsError(f"--store: {error}") from None


def open_registry(url: str) -> Registry:
    """The registry of API keys at ``url`` (migrations run here)."""
    try:
        return Registry.open(url)
    except Exception as error:  # a wrong URL, an unreachable database: said, not a traceback
        raise SettingsError(f"--registry: cannot open {url.split('@')[-1]}: {error}") from None


class Service:
    """Policy, limiter, store, registry and lease seal of one running service.

    ``policy_path`` ``None`` runs the built-in policy (``default_policy.yaml``).
    ``registry`` is a :class:`ratekeeper.registry.Registry` or ``None``; with
    one, its keys are known to the limiter (kept fresh by its watcher once
    :meth:`start` runs) and every reload is written to its audit log.
    ``secret`` seals lease handles: every replica that releases another's
    lease needs the same one; ``None`` is a random secret of this process.
    ``hooks`` are told of every decision besides the service's own metrics
    (``metrics``: :class:`~ratekeeper.server.metrics.ServiceMetrics`; ``metrics=False``
    leaves the decisions uncounted there) and, with a registry, its usage recorder
    (``analytics=False``: none).
    """

    policy: Policy
    limiter: AsyncLimiter

    def __init__(
        self,
        *,
        store: Store,
        policy_path: str | Path | None = None,
        policy: Policy | None = None,
        registry: Registry | None = None,
        secret: bytes | None = None,
        hooks: Sequence[DecisionHook] = (),
        admin_token: str | None = None,
        registry_every: float = 1.0,
        analytics: bool = True,
        metrics: bool = True,
        envoy_config: bool = False,
    ) -> None:
        self.store = store
        #: ``policy_path`` is an envoyproxy/ratelimit config, compiled to a policy when loaded
        self.envoy_config = envoy_config
        self.registry = registry
        self.metrics = ServiceMetrics(lambda: self.store)
        #: counts every decision for the registry (``None``: no registry, or analytics off)
        self.recorder: UsageRecorder | None = None
        if registry is not None and analytics:
            self.recorder = UsageRecorder(registry, clock=self._store_seconds)
            watch = getattr(getattr(store, "outage", None), "watch", None)
            if watch is not None:  # a Redis store: its failures and recoveries are audited
                watch(self.recorder.store_watcher)
        own: list[DecisionHook] = [self.metrics.hook] if metrics else []
        if self.recorder is not None:
            own.append(self.recorder)
        self.hooks: tuple[DecisionHook, ...] = (*own, *hooks)
        self.block_hooks: tuple[BlockHook, ...] = (
            (self.recorder.block_hook,) if self.recorder is not None else ()
        )
        #: the admin API's bearer token (``None``: the admin API is off)
        self.admin_token = admin_token
        self.policy_path = Path(policy_path) if policy_path is not None else default_policy_path()
        self.seal = LeaseSeal(secret)
        self._registry_every = registry_every
        self._watcher: Watcher | None = None
        self._entries: tuple[KeyEntry, ...] = ()
        self._reloading = asyncio.Lock()
        loaded = policy if policy is not None else self._read(self.policy_path)
        self._entries = self._entries_for(loaded)
        self.policy, self.limiter = loaded, self._limiter_for(loaded, self._entries)

    @classmethod
    def open(cls, settings: Settings, *, hooks: Sequence[DecisionHook] = ()) -> Service:
        """The service ``settings`` describe: its store, registry and policy opened."""
        store = open_store(settings.store)
        registry = open_registry(settings.registry) if settings.registry else None
        try:
            return cls(
                store=store,
                policy_path=settings.policy,
                registry=registry,
                secret=settings.secret,
                hooks=hooks,
                admin_token=settings.admin_token,
                envoy_config=settings.envoy_config,
            )
        except BaseException:
            if registry is not None:
                registry.close()
            raise

    def _entries_for(self, policy: Policy) -> tuple[KeyEntry, ...]:
        return tuple(self.registry.entries(policy)) if self.registry is not None else ()

    def _limiter_for(self, policy: Policy, entries: tuple[KeyEntry, ...]) -> AsyncLimiter:
        limiter = AsyncLimiter(policy, self.store, hooks=self.hooks, block_hooks=self.block_hooks)
        if entries:
            limiter.use_keys(entries)
        return limiter

    # the registry's keys

    def _store_seconds(self) -> float:
        """The store's clock in epoch seconds: the one decisions are filed under."""
        return self.store.now_ns() / 1e9

    def start(self) -> None:
        """Follow the registry: its watcher pushes each new snapshot of keys to the limiter;
        the usage recorder flushes every second and rolls up every minute."""
        if self.registry is not None and self._watcher is None:
            self._watcher = self.registry.watch(
                lambda: self.policy, self._use_keys, every=self._registry_every
            )
        if self.recorder is not None:
            self.recorder.start()

    def now(self) -> datetime:
        """The store's clock as an aware UTC ``datetime`` (the admin API's "now")."""
        return datetime.fromtimestamp(self._store_seconds(), UTC)

    def _use_keys(self, entries: tuple[KeyEntry, ...]) -> None:
        self._entries = tuple(entries)
        self.limiter.use_keys(self._entries)

    async def close(self) -> None:
        """Flush the usage counts, stop following the registry, close it and the store."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        if self.registry is not None:
            self.registry.close()
        closing: Callable[[], Any] | None = getattr(self.store, "aclose", None)
        if closing is not None:
            await closing()
        sync_close: Callable[[], Any] | None = getattr(self.store, "close", None)
        if sync_close is not None:
            sync_close()

    async def ping(self) -> bool:
        """Does the store answer? (``/healthz``) One without ``ping_async`` is taken as there."""
        ping: Callable[[], Any] | None = getattr(self.store, "ping_async", None)
        if ping is None:
            return True
        return bool(await ping())

    # reloads

    async def reload_policy(self, *, actor: str, path: str | None = None) -> list[str]:
        """Load the policy file again (or ``path``) and put it in force, or refuse it.

        Returns ``[]`` when the new policy is in force, else its errors, the
        old policy staying in force. Refused: a file that does not load, one
        without a plan that registry keys still use, one the store cannot
        serve (a category needing two Redis Cluster slots). With a registry,
        each attempt is written to its audit log as ``policy.reload`` (done)
        or ``policy.reload_refused`` by ``actor``.
        """
        async with self._reloading:
            target = Path(path) if path is not None else self.policy_path
            errors, loaded = self._load(target)
            if loaded is not None and self.registry is not None:
                missing = sorted(set(self.registry.plans_in_use()) - set(loaded.plans))
                errors += [
                    f"plan {plan!r} is used by keys of the registry; the new policy lacks it"
                    for plan in missing
                ]
            if loaded is not None and not errors:
                entries = self._entries_for(loaded)
                try:
                    limiter = self._limiter_for(loaded, entries)
                except ValueError as error:  # PolicyError of a policy the store cannot serve
                    errors.append(str(error))
                else:
                    self._entries, self.policy, self.limiter = entries, loaded, limiter
                    self.policy_path = target
            self.metrics.reloaded(not errors)
            self._audit(actor, target, errors)
            return errors

    def _read(self, target: Path) -> Policy:
        if self.envoy_config:
            from ..policy.envoy_config import load_envoy_config

            return load_envoy_config(target)
        return load_policy(target)

    def _load(self, target: Path) -> tuple[list[str], Policy | None]:
        try:
            return [], self._read(target)
        except PolicyError as error:
            return [str(error)], None
        except OSError as error:
            return [f"{target}: {error.strerror or error}"], None

    def _audit(self, actor: str, target: Path, errors: list[str]) -> None:
        if errors:
            _log.error(
                "policy reload by %s refused, the old policy stays: %s", actor, "; ".join(errors)
            )
        else:
            _log.info("policy reloaded by %s from %s (%s)", actor, target, self.policy.name)
        if self.registry is None:
            return
        kind = "policy.reload_refused" if errors else "policy.reload"
        detail: dict[str, object] = {"path": str(target), "policy": self.policy.name}
        if errors:
            detail["errors"] = list(errors)
        try:
            self.registry.record(kind, actor=actor, target=self.policy.name, detail=detail)
        except Exception:  # the reload stands (or was refused) whether or not it is written
            _log.exception("could not write the policy reload to the audit log")

"""The registry of API keys: hashed keys, plans, per-key overrides, an audit log.

>>> registry = Registry.open("sqlite:///ratekeeper.sqlite3")        # doctest: +SKIP
>>> record, raw = registry.create_key(policy=policy, plan="pro", name="acme",
...                                   actor="cli:alice")              # doctest: +SKIP
>>> raw                                # shown this once; the database keeps its SHA-256
'rk_...'

SQLAlchemy Core on SQLite (one machine) or PostgreSQL (several replicas),
migrated by Alembic when opened (``migrations/`` ships in the package). A
running service never asks the database during a request: a
:class:`Watcher` pushes the live keys into the limiter when they change
(docs/registry.md).

Private modules, each with its own ``__all__``, re-exported here:

``_tables``     the tables, as SQLAlchemy Core
``_migrate``    Alembic run from the package, one process at a time
``_urls``       registry URLs to engines (psycopg 3 for PostgreSQL)
``_records``    :class:`KeyRecord`, :class:`AuditEvent`: plain frozen data
``_errors``     what is refused, by kind
``_registry``   :class:`Registry`
``_watch``      :class:`Watcher`
``_usage``      usage counts: added by every replica, rolled up, kept a while
``_commands``   what ``ratekeeper keys ...`` does besides parsing options
"""

from __future__ import annotations

from ._commands import DEFAULT_REGISTRY, cli_actor, key_table, parse_limits
from ._errors import InvalidKeyError, KeyConflictError, KeyNotFoundError, RegistryError
from ._records import AuditEvent, KeyRecord
from ._registry import KEY_PREFIX, MAX_AUDIT, Registry, new_raw_key
from ._tables import USAGE_COUNTS
from ._urls import registry_url
from ._usage import ANONYMOUS, Retention, UsagePoint, UsageRow
from ._watch import Watcher

__all__ = [
    "ANONYMOUS",
    "DEFAULT_REGISTRY",
    "KEY_PREFIX",
    "MAX_AUDIT",
    "USAGE_COUNTS",
    "AuditEvent",
    "InvalidKeyError",
    "KeyConflictError",
    "KeyNotFoundError",
    "KeyRecord",
    "Registry",
    "RegistryError",
    "Retention",
    "UsagePoint",
    "UsageRow",
    "Watcher",
    "cli_actor",
    "key_table",
    "new_raw_key",
    "parse_limits",
    "registry_url",
]

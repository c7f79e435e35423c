"""The registry of API keys: create, list, revoke, change plan and overrides; audit all of it.

A key is made here once (``rk_`` and 32 random bytes, URL-safe) and shown
once: the database keeps only its SHA-256 (:func:`ratekeeper.policy.hash_api_key`,
the digest the engine finds presented keys by). Every change writes its
audit row and bumps ``registry_state.revision`` in the same transaction, so
the audit log never misses a change nor tells of one that did not happen,
and a watcher learns of any change from one integer.

Input is checked against the policy before anything is written: a plan the
policy lacks, limits it refuses (:func:`ratekeeper.policy.key_limits`), an id
that is not a name, are :class:`~ratekeeper.registry.InvalidKeyError` with the
field that was wrong.

The engine never asks the registry during a request: :meth:`Registry.watch`
pushes the live keys to the limiter (``limiter.use_keys``) whenever they change.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from ..policy import KeyEntry, Policy, PolicyError, hash_api_key, key_limits
from ._errors import InvalidKeyError, KeyConflictError, KeyNotFoundError, RegistryError
from ._migrate import upgrade
from ._records import AuditEvent, KeyRecord
from ._tables import STATE_ROW, audit, keys, registry_state
from ._urls import engine_for, registry_url, shown
from ._usage import Retention, UsagePoint, UsageRow, add_usage, roll_up, top_keys, usage_series
from ._watch import Watcher

__all__ = ["KEY_PREFIX", "MAX_AUDIT", "Registry", "new_raw_key"]

_log = logging.getLogger("ratekeeper.registry")

#: every key the registry makes starts so: easy to spot in a leaked log or a repo scan
KEY_PREFIX = "rk_"
#: a key id names its counters: the policy file's rule for names
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_TEXT = 200
#: audit rows one query returns at most
MAX_AUDIT = 1000


def new_raw_key() -> str:
    """A new API key: ``rk_`` and 32 random bytes (43 URL-safe characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """API keys in SQLite or PostgreSQL, migrated when opened (:meth:`open`).

    Thread-safe: each call takes a connection of the engine's pool for its
    one transaction. ``actor`` says who asked (``"cli:alice"``,
    ``"admin@10.0.0.5"``): it is written to the audit log with the change.
    """

    def __init__(self, engine: Engine, *, retention: Retention | None = None) -> None:
        """Wrap ``engine`` (a migrated database); :meth:`open` is the usual way in.

        ``retention``: how long usage rows are kept (:class:`Retention`'s defaults:
        minutes 48 hours, hours 35 days, days 13 months).
        """
        self.engine = engine
        self.retention = retention if retention is not None else Retention()
        #: live keys as the engine wants them, by policy: see :meth:`entries`
        self._entries_of: tuple[Policy | None, dict[tuple[Any, ...], KeyEntry]] = (None, {})

    @classmethod
    def open(cls, url: str, *, retention: Retention | None = None) -> Registry:
        """The registry at ``url`` (``sqlite:///path.sqlite3``, ``postgresql://...``),
        migrated to the newest schema first (under a lock other replicas wait on).

        :class:`RegistryError` with the URL (password hidden) when the
        database cannot be reached or migrated.
        """
        engine = engine_for(url)
        try:
            upgrade(engine)
        except OperationalError as error:
            engine.dispose()
            reason = str(error.orig) if error.orig is not None else str(error)
            raise RegistryError(
                f"cannot open the registry {shown(registry_url(url))}: {reason.strip()}"
            ) from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, retention=retention)

    def close(self) -> None:
        """Close the pool's connections (a watcher must be stopped first)."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Registry({shown(self.engine.url)!r})"

    # keys

    def create_key(
        self,
        *,
        policy: Policy,
        plan: str,
        name: str = "",
        key_id: str | None = None,
        user: str | None = None,
        limits: Mapping[str, object] | None = None,
        actor: str,
    ) -> tuple[KeyRecord, str]:
        """Make a key of ``plan``; returns its record and the raw key, shown this once.

        ``key_id`` names its counters (a new random ``k-...`` if not given);
        a policy key with the same id is shadowed by it. Refused, with
        nothing written: a plan ``policy`` lacks, ``limits`` it refuses, an id
        that is not a name or is taken (revoked keys keep theirs).
        """
        _check_plan(policy, plan)
        given = _checked_limits(policy, limits)
        if key_id is None:
            key_id = "k-" + secrets.token_hex(6)
        elif not isinstance(key_id, str) or not _ID_RE.match(key_id):
            raise InvalidKeyError(
                f"key id {key_id!r} is not a name: 1 to 64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit",
                field="id",
            )
        name = _text(name, "name") or ""
        user = _text(user, "user")
        raw = new_raw_key()
        now = _now()
        row = {
            "id": key_id, "sha256": hash_api_key(raw), "name": name, "plan": plan, "user": user,
            "limits": _dumps(given), "created_at": now, "updated_at": now, "revoked_at": None,
        }  # fmt: skip
        detail: dict[str, object] = {"name": name, "plan": plan, "user": user, "limits": given}
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(keys).values(**row))
                _write_audit(connection, "key.create", actor, key_id, detail, now)
                self._bump(connection)
        except IntegrityError:
            raise KeyConflictError(f"a key with id {key_id!r} exists already") from None
        return _record(row), raw

    def list_keys(self, *, include_revoked: bool = False) -> list[KeyRecord]:
        """The registry's keys by id; revoked ones only when asked."""
        query = select(keys).order_by(keys.c.id)
        if not include_revoked:
            query = query.where(keys.c.revoked_at.is_(None))
        with self.engine.connect() as connection:
            return [_record(row._mapping) for row in connection.execute(query)]

    def get_key(self, key_id: str) -> KeyRecord | None:
        """The key ``key_id``, revoked or not; ``None`` when the registry has none."""
        with self.engine.connect() as connection:
            row = connection.execute(select(keys).where(keys.c.id == key_id)).first()
        return None if row is None else _record(row._mapping)

    def set_plan(self, key_id: str, plan: str, *, policy: Policy, actor: str) -> KeyRecord:
        """Move ``key_id`` to ``plan`` (which ``policy`` must have); its overrides stay."""
        return self.update_key(key_id, {"plan": plan}, policy=policy, actor=actor)

    def set_limits(
        self,
        key_id: str,
        limits: Mapping[str, object] | None,
        *,
        policy: Policy,
        actor: str,
    ) -> KeyRecord:
        """Give ``key_id`` its own ``limits`` in place of any it had (``None`` or ``{}``:
        its plan's again), checked against ``policy`` as ``create_key`` checks them."""
        return self.update_key(key_id, {"limits": limits}, policy=policy, actor=actor)

    def update_key(
        self, key_id: str, changes: Mapping[str, Any], *, policy: Policy, actor: str
    ) -> KeyRecord:
        """Change ``plan`` and/or ``limits`` of ``key_id`` in one transaction.

        Both are checked against ``policy`` before either is written; each
        is its own audit row (``key.plan`` with the plan it came from,
        ``key.limits``). :class:`KeyNotFoundError` for no such key,
        :class:`KeyConflictError` for a revoked one.
        """
        unknown = sorted(set(changes) - {"plan", "limits"})
        if unknown or not changes:
            raise InvalidKeyError(
                f"a key's plan and limits can change, not {unknown or 'nothing'}",
                field=unknown[0] if unknown else None,
            )
        values: dict[str, Any] = {}
        audits: list[tuple[str, dict[str, object]]] = []
        if "plan" in changes:
            _check_plan(policy, changes["plan"])
            values["plan"] = changes["plan"]
            audits.append(("key.plan", {"plan": changes["plan"]}))
        if "limits" in changes:
            given = _checked_limits(policy, changes["limits"])
            values["limits"] = _dumps(given)
            audits.append(("key.limits", {"limits": given}))
        now = _now()
        with self.engine.begin() as connection:
            row = _live_row(connection, key_id)
            if values:
                connection.execute(
                    update(keys).where(keys.c.id == key_id).values(**values, updated_at=now)
                )
            for kind, detail in audits:
                if kind == "key.plan":
                    detail["from"] = row.plan
                _write_audit(connection, kind, actor, key_id, detail, now)
            self._bump(connection)
            changed = dict(row._mapping) | values | {"updated_at": now}
        return _record(changed)

    def revoke(self, key_id: str, *, actor: str) -> KeyRecord:
        """Revoke ``key_id``: unknown to every replica's limiter at its watcher's next look.

        :class:`KeyNotFoundError` for no such key, :class:`KeyConflictError`
        for one revoked already (nothing written then).
        """
        now = _now()
        with self.engine.begin() as connection:
            row = _live_row(connection, key_id)
            connection.execute(
                update(keys).where(keys.c.id == key_id).values(revoked_at=now, updated_at=now)
            )
            _write_audit(connection, "key.revoke", actor, key_id, {}, now)
            self._bump(connection)
            changed = dict(row._mapping) | {"revoked_at": now, "updated_at": now}
        return _record(changed)

    def _bump(self, connection: Connection) -> None:
        """Bump the revision on a change's own transaction: watchers see something moved."""
        connection.execute(
            update(registry_state)
            .where(registry_state.c.id == STATE_ROW)
            .values(revision=registry_state.c.revision + 1)
        )

    # the audit log

    def record(
        self,
        kind: str,
        *,
        actor: str,
        target: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """Write an audit row for a change made elsewhere (a block lifted, counters
        reset, a policy reloaded); keys' own changes are written by their methods."""
        with self.engine.begin() as connection:
            _write_audit(connection, kind, actor, target, detail or {}, _now())

    def audit(
        self,
        *,
        since: datetime | None = None,
        key: str | None = None,
        kind: str | None = None,
        limit: int = MAX_AUDIT,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        """Audit rows oldest first: at or after ``since``, about ``key`` (the target),
        of ``kind``; at most ``limit`` (1 to 1000). ``newest_first``: the latest ``limit``
        rows, newest first (a page that shows what just happened, however busy the day)."""
        if not 1 <= limit <= MAX_AUDIT:
            raise ValueError(f"limit must be 1 to {MAX_AUDIT}, got {limit}")
        order = audit.c.id.desc() if newest_first else audit.c.id
        query = select(audit).order_by(order).limit(limit)
        if since is not None:
            query = query.where(audit.c.at >= since)
        if key is not None:
            query = query.where(audit.c.target == key)
        if kind is not None:
            query = query.where(audit.c.kind == kind)
        with self.engine.connect() as connection:
            return [
                AuditEvent(row.id, row.at, row.actor, row.kind, row.target, json.loads(row.detail))
                for row in connection.execute(query)
            ]

    # usage analytics (ratekeeper.registry._usage; docs/analytics.md)

    def add_usage(self, rows: Iterable[UsageRow]) -> None:
        """Add ``rows`` to the per-minute counts: several processes each add theirs."""
        add_usage(self.engine, rows)

    def usage_series(
        self,
        *,
        key: str | None = None,
        category: str | None = None,
        start: datetime,
        end: datetime,
        step: str = "minute",
    ) -> list[UsagePoint]:
        """Counts per ``step`` (minute, hour, day) from ``start`` to before ``end``, zeros
        included; summed over keys (categories) unless ``key`` (``category``) is given.

        Hour and day rows are as fresh as the last :meth:`roll_up`.
        ``ValueError`` for a step, range or length it cannot answer.
        """
        return usage_series(
            self.engine, key=key, category=category, start=start, end=end, step=step
        )

    def top_keys(
        self,
        *,
        by: str = "requests",
        since: datetime,
        limit: int = 10,
        now: datetime | None = None,
    ) -> list[tuple[str, int]]:
        """``(key id, count)`` of the keys with the most ``requests`` (or ``refusals``)
        since ``since``, most first; ``anonymous`` is the callers without a key.

        ``now`` (the wall clock when not given) picks the finest rows still
        covering ``since`` under the retention.
        """
        return top_keys(
            self.engine, by=by, since=since, limit=limit, now=now or _now(),
            retention=self.retention,
        )  # fmt: skip

    def roll_up(self, now: datetime) -> None:
        """Recompute the hour and day rows from the finer ones, drop rows past retention.

        Idempotent: any replica may run it any number of times.
        """
        roll_up(self.engine, now, self.retention)

    # what the engine needs

    def plans_in_use(self) -> set[str]:
        """The plans of live keys: a policy reload that drops one of them is refused."""
        query = select(keys.c.plan).where(keys.c.revoked_at.is_(None)).distinct()
        with self.engine.connect() as connection:
            return set(connection.scalars(query))

    def revision(self) -> int:
        """A number that changes with every change of the keys: the watcher's one query."""
        query = select(registry_state.c.revision).where(registry_state.c.id == STATE_ROW)
        with self.engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    def entries(self, policy: Policy) -> tuple[KeyEntry, ...]:
        """The live keys as ``limiter.use_keys`` takes them, their limits checked by ``policy``.

        An unchanged key is the same :class:`KeyEntry` object as last time, so
        the limiter reuses its compiled form. A key whose own limits the
        policy no longer accepts (a limit it dropped) keeps its plan's
        limits, with a warning naming the key; a key of a plan the policy
        lacks is passed on and skipped by the limiter.
        """
        query = select(
            keys.c.id, keys.c.sha256, keys.c.plan, keys.c.name, keys.c.user, keys.c.limits
        ).where(keys.c.revoked_at.is_(None)).order_by(keys.c.id)  # fmt: skip
        with self.engine.connect() as connection:
            rows = list(connection.execute(query))
        known_policy, known = self._entries_of
        if known_policy is not policy:
            known = {}
        fresh: dict[tuple[Any, ...], KeyEntry] = {}
        for row in rows:
            shape = tuple(row)
            entry = known.get(shape)
            if entry is None:
                entry = _entry(policy, row)
            fresh[shape] = entry
        self._entries_of = (policy, fresh)
        return tuple(fresh.values())

    def watch(
        self,
        policy: Callable[[], Policy],
        on_change: Callable[[tuple[KeyEntry, ...]], None],
        every: float = 1.0,
    ) -> Watcher:
        """Keep a limiter's keys fresh: ``on_change(entries)`` now, then whenever they change.

        Every ``every`` seconds one query reads :meth:`revision`; only when
        it moved (or ``policy()`` is another policy) are the keys read and
        handed to ``on_change``. The first look happens here, in the caller's
        thread (its errors raise); the next ones in a daemon thread, which
        logs a failing database once and keeps the last keys meanwhile.
        """
        watcher = Watcher(self.revision, self.entries, policy, on_change, every)
        watcher.poll()
        watcher.start()
        return watcher


def _write_audit(
    connection: Connection,
    kind: str,
    actor: str,
    target: str | None,
    detail: Mapping[str, object],
    now: datetime,
) -> None:
    connection.execute(
        insert(audit).values(
            at=now, actor=actor[:_MAX_TEXT], kind=kind, target=target, detail=_dumps(detail)
        )
    )


def _live_row(connection: Connection, key_id: str) -> Row[Any]:
    """``key_id``'s row, locked for the change; refused when missing or revoked."""
    row = connection.execute(select(keys).where(keys.c.id == key_id).with_for_update()).first()
    if row is None:
        raise KeyNotFoundError(f"no key with id {key_id!r} in the registry")
    if row.revoked_at is not None:
        raise KeyConflictError(
            f"key {key_id!r} was revoked at {_iso(row.revoked_at)}; a revoked key "
            "stays revoked (create a new one)"
        )
    return row


def _dumps(data: Mapping[str, object]) -> str:
    return json.dumps(dict(data), sort_keys=True, separators=(",", ":"), default=str)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _check_plan(policy: Policy, plan: object) -> None:
    if not isinstance(plan, str) or plan not in policy.plans:
        known = ", ".join(sorted(policy.plans)) or "none"
        raise InvalidKeyError(
            f"policy {policy.name!r} has no plan {plan!r} (its plans: {known})", field="plan"
        )


def _checked_limits(policy: Policy, limits: Mapping[str, object] | None) -> dict[str, Any]:
    """``limits`` as given, once ``policy`` accepts them; ``{}`` for none."""
    if not limits:
        return {}
    if not isinstance(limits, Mapping):
        raise InvalidKeyError("limits must be a mapping of limit names to rates", field="limits")
    given = dict(limits)
    try:
        key_limits(policy, given)
    except PolicyError as error:
        where = error.field or "limits"
        raise InvalidKeyError(f"{where}: {error.message}", field=where) from None
    return given


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT or not value.isprintable():
        raise InvalidKeyError(
            f"{field} must be printable text of at most {_MAX_TEXT} characters", field=field
        )
    return value


def _record(row: Mapping[Any, Any]) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        plan=row["plan"],
        user=row["user"],
        limits=json.loads(row["limits"]) if isinstance(row["limits"], str) else {},
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _entry(policy: Policy, row: Row[Any, Any, Any, Any, Any, Any]) -> KeyEntry:
    own: dict[str, Any] = json.loads(row.limits)
    try:
        limits = key_limits(policy, own) if own else {}
    except PolicyError as error:
        _log.warning(
            "key %s: its own limits do not fit policy %r (%s); it gets its plan's",
            row.id, policy.name, error,
        )  # fmt: skip
        limits = {}
    return KeyEntry(row.id, row.sha256, row.plan, row.name, row.user, limits)

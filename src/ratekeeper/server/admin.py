"""The admin API: API keys, their usage and counters, blocks, the audit log, policy reloads.

Mounted under ``/admin`` by the service (``admin_routes(service)``)::

    GET    /keys                    keys of the registry and of the policy file (never the key)
    POST   /keys                    create one: {"plan", "name"?, "id"?, "user"?, "limits"?}
                                    -> 201, the raw key in "key", this once
    GET    /keys/{id}               one key
    PATCH  /keys/{id}               {"plan"?, "limits"? (object or null), "unlimited"?: true}
    DELETE /keys/{id}               revoke it (every replica refuses it within a second)
    GET    /keys/{id}/limits        what it has left of each limit now; consumes nothing
                                    (``/keys/{id}/usage``: the same, its issue-12 name)
    POST   /keys/{id}/reset         forget the counters it alone charges
    GET    /usage?key=&category=&from=&to=&step=   decisions counted per minute, hour, day
    GET    /usage/top?by=&since=&limit=            keys with the most requests (refusals)
    GET    /blocks                  lockout and penalty blocks in force
    DELETE /blocks/{key}            lift one
    GET    /audit?since=&key=&kind=&limit=   the audit log, oldest first
    POST   /policy/reload           read the policy file again (refused: the old one stays)

Every request is authenticated first (:mod:`ratekeeper.server._auth`): without
the bearer token, or with a wrong one, the answer is 401 whatever the path,
method, parameters or body, and nothing changes. Every error is JSON,
``{"error": {"code": ..., "message": ...}}``; a body that is not JSON, of the
wrong types or with unknown fields is 422 and changes nothing. Every change
is written to the registry's audit log with who asked (``admin@<client
address>``). A key declared in the policy file is not the registry's to
change: changing or revoking it is 409, saying so (usage and reset work on
it). Raw keys are returned once, by ``POST /keys``, and never logged.

The routes read the service's *current* policy and limiter at each request
(a reload replaces both): :class:`AdminService` is what they need of it.
docs/admin-api.md has every status and body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from ..limiter import AsyncLimiter
from ..policy import KeyEntry, Policy, compile_policy
from ..registry import (
    MAX_AUDIT,
    USAGE_COUNTS,
    InvalidKeyError,
    KeyConflictError,
    KeyNotFoundError,
    KeyRecord,
    Registry,
)
from ..stores import Store, StoreUnavailableError
from ._auth import error_response, require_admin
from ._guard import TokenGuard

__all__ = [
    "MAX_BODY",
    "AdminService",
    "KeysHolder",
    "admin_routes",
    "openapi_paths",
    "refresh_keys",
]

#: bytes of a request body read at most (a key with its limits is well under 1 KB)
MAX_BODY = 64 * 1024

Handler = Callable[[Request, "AdminService"], Awaitable[Response]]


class AdminService(Protocol):
    """What the admin routes need of the running service (``server.service.Service``).

    ``policy`` and ``limiter`` are the ones in force (replaced together by a
    reload); ``registry`` is ``None`` when the service runs without one.
    """

    policy: Policy
    limiter: AsyncLimiter
    store: Store
    registry: Registry | None

    async def reload_policy(self, *, actor: str, path: str | None = None) -> list[str]: ...


class _RefusedError(Exception):
    """An answer other than success, raised from deep in a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = error_response(status, code, message)


def admin_routes(service: AdminService, *, token: str | None = None) -> list[BaseRoute]:
    """The admin API's routes, to mount under ``/admin``.

    ``token`` is the bearer token; ``None`` reads ``service.admin_token`` at
    each request (the service's setting), and no token at all turns the
    admin API off (every request 404). The routes sit behind one mount that
    authenticates first: an unknown path or method is 401 before it is 404
    or 405. The mount lists its routes (``Mount.routes``) for route listings.
    """

    def current_token() -> str | None:
        return token if token is not None else getattr(service, "admin_token", None)

    routes: list[BaseRoute] = [
        _route("/keys", {"GET": _list_keys, "POST": _create_key}, service),
        _route(
            "/keys/{key_id}",
            {"GET": _get_key, "PATCH": _patch_key, "DELETE": _revoke_key},
            service,
        ),
        _route("/keys/{key_id}/limits", {"GET": _limits}, service),
        _route("/keys/{key_id}/usage", {"GET": _limits}, service),  # issue 12's name
        _route("/keys/{key_id}/reset", {"POST": _reset}, service),
        _route("/usage", {"GET": _usage_series}, service),
        _route("/usage/top", {"GET": _usage_top}, service),
        _route("/blocks", {"GET": _blocks}, service),
        _route("/blocks/{block_key:path}", {"DELETE": _lift_block}, service),
        _route("/audit", {"GET": _audit}, service),
        _route("/policy/reload", {"POST": _reload}, service),
    ]
    return [Mount("", app=_AdminApp(routes, current_token, TokenGuard(service)))]


class _AdminApp:
    """The admin routes behind the token: authentication before routing, JSON 404 and 405."""

    def __init__(
        self, routes: list[BaseRoute], token: Callable[[], str | None], guard: TokenGuard
    ) -> None:
        self.router = Router(routes=routes, default=_not_found)
        self._token = token
        self._guard = guard

    @property
    def routes(self) -> list[BaseRoute]:
        return self.router.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            token = self._token()
            wait = await self._guard.blocked_for(request) if token is not None else 0
            if wait:  # too many wrong tokens from this address: no token is compared now
                await error_response(
                    429,
                    "too_many_wrong_tokens",
                    f"too many wrong admin tokens from this address; retry in {wait} s",
                    {"Retry-After": str(wait)},
                )(scope, receive, send)
                return
            refused = require_admin(request, token)
            if refused is not None:
                if refused.status_code == 401:
                    await self._guard.failed(request)
                await refused(scope, receive, send)
                return
        try:
            await self.router(scope, receive, send)
        except HTTPException as error:  # raised before anything was sent: a route's 405
            if error.status_code != 405:
                raise
            allowed = ", ".join(sorted((error.headers or {}).get("Allow", "").split(", ")))
            response = error_response(
                405,
                "method_not_allowed",
                f"{scope['method']} is not allowed here; allowed: {allowed}",
                {"Allow": allowed},
            )
            await response(scope, receive, send)


def _route(path: str, handlers: dict[str, Handler], service: AdminService) -> Route:
    """One path and its handlers by method."""

    async def endpoint(request: Request) -> Response:
        try:
            handler = handlers.get(request.method) or handlers["GET"]  # HEAD: as GET
            return await handler(request, service)
        except _RefusedError as refused:
            return refused.response

    return Route(path, endpoint, methods=list(handlers))


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(404, "not_found", "no such admin path")(scope, receive, send)


def _answer(data: Mapping[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(dict(data), status_code=status, headers={"Cache-Control": "no-store"})


def _actor(request: Request) -> str:
    """Who asked, for the audit log: the admin API and the client's address."""
    client = request.client
    return f"admin@{client.host}" if client is not None else "admin"


# request bodies: JSON objects of known fields and types, or 422


async def _body(request: Request, fields: Mapping[str, tuple[type, ...]]) -> dict[str, Any]:
    """The request's JSON object, its fields among ``fields`` and of their types."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise _RefusedError(422, "invalid_request", f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _RefusedError(422, "invalid_request", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _RefusedError(422, "invalid_request", "the body must be a JSON object")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = f"the fields are: {', '.join(sorted(fields))}" if fields else "it takes none"
        raise _RefusedError(422, "invalid_request", f"unknown field {unknown[0]!r}; {known}")
    for name, value in data.items():
        types = fields[name]
        if not isinstance(value, types):
            wanted = " or ".join(_JSON_NAMES[kind] for kind in types)
            raise _RefusedError(422, "invalid_request", f"{name} must be {wanted}")
    return data


_JSON_NAMES = {str: "a string", dict: "an object", bool: "true or false", type(None): "null"}


def _registry(service: AdminService) -> Registry:
    registry = service.registry
    if registry is None:
        raise _RefusedError(
            409,
            "no_registry",
            "this service has no registry of keys (start it with --registry URL)",
        )
    return registry


# keys


def _policy_key(service: AdminService, key_id: str) -> KeyEntry | None:
    return next((entry for entry in service.policy.keys if entry.id == key_id), None)


def _policy_key_json(entry: KeyEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "name": entry.name, "plan": entry.plan, "user": entry.user,
        "limits": {name: _plan_value(value) for name, value in entry.limits.items()},
        "created_at": None, "revoked_at": None, "source": "policy",
    }  # fmt: skip


def _plan_value(value: object) -> object:
    """A compiled plan value in the policy file's words: "60/minute;1000/hour", 5, "unlimited"."""
    if value is None or value == ():
        return "unlimited"
    if isinstance(value, tuple):
        return ";".join(str(rate) for rate in value)
    return value


def _record_json(record: KeyRecord) -> dict[str, Any]:
    return {**record.as_json(), "source": "registry"}


def _refused_policy_key(key_id: str, what: str) -> _RefusedError:
    return _RefusedError(
        409,
        "policy_key",
        f"key {key_id!r} is declared in the policy file, not in the registry: it cannot be "
        f"{what} here; edit the policy file and reload it",
    )


async def _list_keys(request: Request, service: AdminService) -> Response:
    include_revoked = _flag(request, "include_revoked")
    registry = service.registry
    records: list[KeyRecord] = []
    shadowing: set[str] = set()
    if registry is not None:
        records = await run_in_threadpool(registry.list_keys, include_revoked=include_revoked)
        live = await run_in_threadpool(registry.entries, service.policy)
        shadowing = {entry.id for entry in live} | {entry.sha256 for entry in live}
    listed = [_record_json(record) for record in records]
    listed += [
        _policy_key_json(entry)
        for entry in service.policy.keys
        if entry.id not in shadowing and entry.sha256 not in shadowing
    ]
    listed.sort(key=lambda item: (item["id"], item["source"]))
    return _answer({"keys": listed})


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None or value in ("false", "0"):
        return False
    if value in ("true", "1", ""):
        return True
    raise _RefusedError(422, "invalid_request", f"{name} must be true or false")


_CREATE = {
    "plan": (str,), "name": (str,), "id": (str,), "user": (str, type(None)),
    "limits": (dict, type(None)),
}  # fmt: skip


async def _create_key(request: Request, service: AdminService) -> Response:
    data = await _body(request, _CREATE)
    registry = _registry(service)
    if "plan" not in data:
        raise _RefusedError(422, "invalid_request", "plan is required")
    try:
        record, raw = await run_in_threadpool(
            lambda: registry.create_key(
                policy=service.policy, plan=data["plan"], name=data.get("name", ""),
                key_id=data.get("id"), user=data.get("user"), limits=data.get("limits"),
                actor=_actor(request),
            )
        )  # fmt: skip
    except InvalidKeyError as error:
        raise _RefusedError(422, "invalid_key", str(error)) from None
    except KeyConflictError as error:
        raise _RefusedError(409, "conflict", str(error)) from None
    await refresh_keys(service)
    return _answer({"key": raw, **_record_json(record)}, 201)


class KeysHolder(Protocol):
    """What :func:`refresh_keys` needs: the policy and limiter in force, the registry."""

    policy: Policy
    limiter: AsyncLimiter
    registry: Registry | None


async def refresh_keys(service: KeysHolder) -> None:
    """This replica's limiter learns a change now; the others at their watcher's next look.

    The limiter is read after the keys: a policy reloaded meanwhile has a new limiter that
    read the keys itself, and these (checked by the old policy) are not given to it.
    """
    registry = service.registry
    if registry is None:
        return
    policy = service.policy
    entries = await run_in_threadpool(registry.entries, policy)
    if service.policy is policy:
        service.limiter.use_keys(entries)


async def _registry_record(service: AdminService, key_id: str) -> KeyRecord | None:
    registry = service.registry
    return None if registry is None else await run_in_threadpool(registry.get_key, key_id)


async def _get_key(request: Request, service: AdminService) -> Response:
    key_id = request.path_params["key_id"]
    record = await _registry_record(service, key_id)
    if record is not None and not record.revoked:
        return _answer(_record_json(record))
    entry = _policy_key(service, key_id)
    if entry is not None:
        return _answer(_policy_key_json(entry))
    if record is not None:
        return _answer(_record_json(record))
    raise _RefusedError(404, "not_found", f"no key with id {key_id!r}")


async def _changeable(service: AdminService, key_id: str, what: str) -> Registry:
    """The registry holding ``key_id`` live, else the refusal that says why not."""
    record = await _registry_record(service, key_id)
    if record is None or record.revoked:
        if _policy_key(service, key_id) is not None:
            raise _refused_policy_key(key_id, what)
        if record is None:
            raise _RefusedError(404, "not_found", f"no key with id {key_id!r}")
    return _registry(service)


_PATCH = {"plan": (str,), "limits": (dict, type(None)), "unlimited": (bool,)}


async def _patch_key(request: Request, service: AdminService) -> Response:
    key_id = request.path_params["key_id"]
    data = await _body(request, _PATCH)
    if not data:
        raise _RefusedError(
            422, "invalid_request", "nothing to change: give plan, limits or unlimited"
        )
    if "unlimited" in data:
        if "limits" in data or data["unlimited"] is not True:
            raise _RefusedError(
                422, "invalid_request", "unlimited takes true, and no limits beside it"
            )
        overridable = compile_policy(service.policy).overridable
        data["limits"] = dict.fromkeys(sorted(overridable), "unlimited")
    registry = await _changeable(service, key_id, "changed")
    policy, actor = service.policy, _actor(request)
    changes: dict[str, Any] = {name: data[name] for name in ("plan", "limits") if name in data}
    record = await _registry_call(
        lambda: registry.update_key(key_id, changes, policy=policy, actor=actor)
    )
    await refresh_keys(service)
    return _answer(_record_json(record))


async def _registry_call(call: Callable[[], KeyRecord]) -> KeyRecord:
    """A registry change, its refusals as answers."""
    try:
        return await run_in_threadpool(call)
    except InvalidKeyError as error:
        raise _RefusedError(422, "invalid_key", str(error)) from None
    except KeyNotFoundError as error:
        raise _RefusedError(404, "not_found", str(error)) from None
    except KeyConflictError as error:
        raise _RefusedError(409, "conflict", str(error)) from None


async def _revoke_key(request: Request, service: AdminService) -> Response:
    key_id = request.path_params["key_id"]
    registry = await _changeable(service, key_id, "revoked")
    actor = _actor(request)
    record = await _registry_call(lambda: registry.revoke(key_id, actor=actor))
    await refresh_keys(service)
    return _answer(_record_json(record))


# usage and counters


def _no_live_key(key_id: str) -> _RefusedError:
    return _RefusedError(404, "not_found", f"no live key with id {key_id!r}")


async def _limits(request: Request, service: AdminService) -> Response:
    key_id = request.path_params["key_id"]
    limiter = service.limiter
    counters = limiter.key_counters(key_id)
    if counters is None:
        raise _no_live_key(key_id)
    try:
        usage = await limiter.usage(key_id)
    except StoreUnavailableError as error:
        raise _RefusedError(503, "store_unavailable", str(error)) from None
    if usage is None:  # revoked meanwhile
        raise _no_live_key(key_id)
    return _answer(
        {
            "id": key_id,
            "plan": counters.plan,
            "limits": [
                {
                    "name": item.name,
                    "limit": item.limit,
                    "remaining": item.remaining,
                    "reset": None if item.reset_at is None else math.ceil(item.reset_at),
                    "window": item.window,
                    "shared": item.shared,
                }
                for item in usage
            ],
        }
    )


async def _reset(request: Request, service: AdminService) -> Response:
    key_id = request.path_params["key_id"]
    try:
        counters = await service.limiter.reset_key(key_id)
    except StoreUnavailableError as error:
        raise _RefusedError(503, "store_unavailable", str(error)) from None
    if counters is None:
        raise _no_live_key(key_id)
    await _audit_record(service, request, "key.reset", key_id, {"counters": counters})
    return _answer({"id": key_id, "counters": counters})


async def _audit_record(
    service: AdminService, request: Request, kind: str, target: str, detail: dict[str, object]
) -> None:
    registry = service.registry
    if registry is not None:
        actor = _actor(request)
        await run_in_threadpool(
            lambda: registry.record(kind, actor=actor, target=target, detail=detail)
        )


# usage analytics (docs/analytics.md)

#: the range a series covers when ``from`` is not given, by step
_DEFAULT_SPAN = {
    "minute": timedelta(hours=1), "hour": timedelta(hours=24), "day": timedelta(days=30),
}  # fmt: skip
#: keys ``/usage/top`` lists at most
_MOST_TOP = 100


def _now(service: AdminService) -> datetime:
    """The service's now: its store's clock (``Service.now``), else the wall clock."""
    now: Callable[[], datetime] | None = getattr(service, "now", None)
    return now() if now is not None else datetime.now(UTC)


def _known_parameters(request: Request, known: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise _RefusedError(
            422, "invalid_request", f"unknown parameter {unknown[0]!r}; use {', '.join(known)}"
        )


async def _usage_series(request: Request, service: AdminService) -> Response:
    _known_parameters(request, ("key", "category", "from", "to", "step"))
    query = request.query_params
    step = query.get("step", "minute")
    if step not in _DEFAULT_SPAN:
        raise _RefusedError(
            422, "invalid_request", f"step must be minute, hour or day, got {step!r}"
        )
    end = _moment(query.get("to"), "to") or _now(service)
    start = _moment(query.get("from"), "from") or end - _DEFAULT_SPAN[step]
    key, category = query.get("key") or None, query.get("category")
    registry = _registry(service)
    try:
        points = await run_in_threadpool(
            lambda: registry.usage_series(
                key=key, category=category, start=start, end=end, step=step
            )
        )
    except ValueError as error:
        raise _RefusedError(422, "invalid_request", str(error)) from None
    data = [point.as_json() for point in points]
    totals = {
        name: sum(point[name] for point in data) for name in (*USAGE_COUNTS, "requests", "refused")
    }
    return _answer(
        {
            "key": key,
            "category": category,
            "step": step,
            "from": _iso(points[0].at),
            "to": _iso(end),
            "points": data,
            "totals": totals,
        }
    )


async def _usage_top(request: Request, service: AdminService) -> Response:
    _known_parameters(request, ("by", "since", "limit"))
    query = request.query_params
    by = query.get("by", "requests")
    if by not in ("requests", "refusals"):
        raise _RefusedError(422, "invalid_request", f"by must be requests or refusals, got {by!r}")
    now = _now(service)
    since = _moment(query.get("since"), "since") or now - timedelta(hours=1)
    limit_text = query.get("limit", "10")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= _MOST_TOP:
        raise _RefusedError(
            422, "invalid_request", f"limit must be 1 to {_MOST_TOP}, got {limit_text!r}"
        )
    registry = _registry(service)
    try:
        top = await run_in_threadpool(
            lambda: registry.top_keys(by=by, since=since, limit=int(limit_text), now=now)
        )
    except ValueError as error:
        raise _RefusedError(422, "invalid_request", str(error)) from None
    return _answer(
        {"by": by, "since": _iso(since), "keys": [{"id": key, "count": n} for key, n in top]}
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# blocks


async def _blocks(request: Request, service: AdminService) -> Response:
    try:
        blocks = await run_in_threadpool(service.store.lockouts.blocks)
    except StoreUnavailableError as error:
        raise _RefusedError(503, "store_unavailable", str(error)) from None
    return _answer(
        {
            "blocks": [
                {
                    "key": block.key,
                    "until": math.ceil(block.until),
                    "failures": block.failures,
                    "streak": block.streak,
                }
                for block in sorted(blocks, key=lambda block: block.key)
            ]
        }
    )


async def _lift_block(request: Request, service: AdminService) -> Response:
    key = request.path_params["block_key"]
    try:
        lifted = await run_in_threadpool(service.store.lockouts.unblock, key)
    except StoreUnavailableError as error:
        raise _RefusedError(503, "store_unavailable", str(error)) from None
    if not lifted:
        raise _RefusedError(404, "not_found", f"no block on {key!r}")
    await _audit_record(service, request, "block.lift", key, {})
    return _answer({"key": key, "lifted": True})


# the audit log


async def _audit(request: Request, service: AdminService) -> Response:
    query = request.query_params
    unknown = sorted(set(query) - {"since", "key", "kind", "limit"})
    if unknown:
        raise _RefusedError(
            422, "invalid_request", f"unknown parameter {unknown[0]!r}; use since, key, kind, limit"
        )
    since = _moment(query.get("since"), "since")
    limit = _limit(query.get("limit"))
    registry = _registry(service)
    events = await run_in_threadpool(
        lambda: registry.audit(
            since=since, key=query.get("key"), kind=query.get("kind"), limit=limit
        )
    )
    return _answer({"events": [event.as_json() for event in events]})


def parse_moment(text: str) -> datetime:
    """A point in time as the admin API and the dashboard take it: ISO 8601
    (``2025-01-31T12:00:00Z``; UTC when no offset) or epoch seconds. ``ValueError``
    says ``"out of range"`` or ``"not a time"``."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and 0 <= seconds < 253402300800:  # before year 10000
            return datetime.fromtimestamp(seconds, UTC)
        raise ValueError("out of range")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not a time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _moment(text: str | None, name: str) -> datetime | None:
    """The parameter ``name`` (:func:`parse_moment`); ``None`` when not given."""
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as error:
        if str(error) == "out of range":
            raise _RefusedError(
                422, "invalid_request", f"{name} is out of range: {text!r}"
            ) from None
        raise _RefusedError(
            422, "invalid_request", f"{name} must be ISO 8601 or epoch seconds, got {text!r}"
        ) from None


def _limit(text: str | None) -> int:
    if text is None:
        return MAX_AUDIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_AUDIT:
        raise _RefusedError(422, "invalid_request", f"limit must be 1 to {MAX_AUDIT}, got {text!r}")
    return int(text)


# the policy


async def _reload(request: Request, service: AdminService) -> Response:
    await _body(request, {})  # no fields: the service's own file is read again
    errors = await service.reload_policy(actor=_actor(request))
    if errors:
        response = error_response(
            422, "policy_refused", "the policy was not reloaded; the one in force stays: "
            + "; ".join(errors),
        )  # fmt: skip
        return response
    return _answer({"reloaded": True, "policy": service.policy.name})


# the admin API described, for the service's /openapi.json


_ERRORS = {
    401: "No admin token, or a wrong one (`unauthorized`); nothing was read or changed.",
    404: "No such key or block (`not_found`).",
    409: "A conflict: the id is taken, the key is revoked (`conflict`), it is the policy "
    "file's (`policy_key`), or the service has no registry (`no_registry`).",
    422: "A malformed call (`invalid_request`) or one the policy refuses (`invalid_key`, "
    "`policy_refused`); nothing was changed.",
    503: "The store cannot be reached (`store_unavailable`).",
}
_KEY = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "plan": {"type": "string"},
        "user": {"type": ["string", "null"]},
        "limits": {"type": "object"},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "source": {"enum": ["registry", "policy"]},
    },
}
_LIMITS_FIELD = {
    "type": ["object", "null"],
    "description": 'The key\'s own limits: {"api": "100/minute", "slots": 5, "x": "unlimited"}',
}


def _operation(
    summary: str,
    answer: dict[str, Any],
    *errors: int,
    status: int = 200,
    body: dict[str, Any] | None = None,
    parameters: tuple[str, ...] = (),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {
            "description": "Done.",
            "content": {"application/json": {"schema": answer}},
        }
    }
    for code in (401, *errors):
        responses[str(code)] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"admin": []}],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in parameters
        ]
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return operation


_QUERY = {
    "key": "A key id (`anonymous`: callers without a key); all keys summed when absent.",
    "category": "A category; all summed when absent.",
    "from": "Start (ISO 8601 or epoch seconds), floored to its bucket; default: `to` less "
    "an hour (minute), a day (hour) or 30 days (day).",
    "to": "End, excluded (ISO 8601 or epoch seconds); default: now.",
    "step": "`minute` (default), `hour` or `day` (hours and days as of the last roll-up).",
    "by": "`requests` (default) or `refusals`.",
    "since": "ISO 8601 or epoch seconds; default: an hour ago.",
    "limit": "How many keys, 1 to 100 (default 10).",
}


def _query(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
         "description": _QUERY[name]}
        for name in names
    ]  # fmt: skip


def openapi_paths() -> dict[str, Any]:
    """The admin API as OpenAPI 3.1 ``paths`` (mounted at ``/admin``): what it serves."""
    key_id = ("key_id",)
    object_of = {"type": "object"}
    create = {
        "type": "object",
        "required": ["plan"],
        "additionalProperties": False,
        "properties": {
            "plan": {"type": "string"},
            "name": {"type": "string"},
            "id": {"type": "string"},
            "user": {"type": ["string", "null"]},
            "limits": _LIMITS_FIELD,
        },
    }
    patch = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "plan": {"type": "string"},
            "limits": _LIMITS_FIELD,
            "unlimited": {"const": True},
        },
    }
    created = {**_KEY, "properties": {**_KEY["properties"], "key": {"type": "string"}}}  # type: ignore[dict-item]
    return {
        "/admin/keys": {
            "get": _operation("API keys of the registry and the policy file (never the keys)",
                              {"type": "object", "properties": {"keys": {"type": "array",
                                                                         "items": _KEY}}}, 422),
            "post": _operation("Create a key; the raw key is in this answer only", created,
                               409, 422, status=201, body=create),
        },
        "/admin/keys/{key_id}": {
            "get": _operation("One key", _KEY, 404, parameters=key_id),
            "patch": _operation("Change a key's plan or own limits", _KEY, 404, 409, 422,
                                body=patch, parameters=key_id),
            "delete": _operation("Revoke a key", _KEY, 404, 409, parameters=key_id),
        },
        "/admin/keys/{key_id}/limits": {
            "get": _operation("What a key has left of each limit now, consuming nothing",
                              object_of, 404, 503, parameters=key_id),
        },
        "/admin/keys/{key_id}/usage": {
            "get": {**_operation("The same as /admin/keys/{key_id}/limits (its former name)",
                                 object_of, 404, 503, parameters=key_id), "deprecated": True},
        },
        "/admin/keys/{key_id}/reset": {
            "post": _operation("Forget the counters only this key charges", object_of, 404,
                               503, parameters=key_id),
        },
        "/admin/usage": {
            "get": {**_operation("Decisions counted per minute, hour or day (zeros included)",
                                 object_of, 409, 422),
                    "parameters": _query(("key", "category", "from", "to", "step"))},
        },
        "/admin/usage/top": {
            "get": {**_operation("The keys with the most requests or refusals since a time",
                                 object_of, 409, 422),
                    "parameters": _query(("by", "since", "limit"))},
        },
        "/admin/blocks": {
            "get": _operation("Clients blocked by a lockout or the penalty", object_of, 503),
        },
        "/admin/blocks/{block_key}": {
            "delete": _operation("Lift a block", object_of, 404, 503, parameters=("block_key",)),
        },
        "/admin/audit": {
            "get": _operation("The audit log, oldest first: who changed what, when",
                              object_of, 409, 422),
        },
        "/admin/policy/reload": {
            "post": _operation("Read the policy file again; refused: the old one stays",
                               object_of, 422),
        },
    }  # fmt: skip

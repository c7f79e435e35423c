"""The dashboard's handlers: read what a page shows, render it, or make the change asked.

Each handler is called by :class:`~._app.DashboardApp` only once the caller
is authenticated and, for a POST, once its origin and CSRF token are
checked: nothing here looks at credentials. Database and store calls that
block run in the thread pool; every change is written to the audit log
with who made it (``dashboard@<client address>``) and redirects (303) to
the page that shows it, so a reload never repeats it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...policy import KeyEntry
from ...registry import (
    MAX_AUDIT,
    InvalidKeyError,
    KeyConflictError,
    KeyNotFoundError,
    KeyRecord,
    Registry,
)
from ...stores import StoreUnavailableError
from ..admin import parse_moment, refresh_keys
from ._data import Analytics, DashboardService
from ._html import Markup
from ._pages import (
    RANGES,
    RATE_SECONDS,
    AuditFilters,
    Frame,
    Health,
    KeyView,
    audit_page,
    confirm_page,
    error_page,
    key_page,
    keys_page,
    overview_page,
    period_limit,
    rate_chart,
    utilization_chart,
)

__all__ = ["NOTICES", "Call", "Views", "html_response"]

#: what a page says after a change redirected to it (``?done=``): fixed words, never echoed
NOTICES = {
    "unblocked": "The block is lifted.",
    "not-blocked": "That client was not blocked (any more).",
    "revoked": "The key is revoked: every replica refuses it within a second.",
    "plan": "The plan is changed.",
    "same-plan": "The key is on that plan already: nothing changed.",
}
#: headers of every page: never cached, never framed, scripts and styles only from here
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def html_response(
    content: Markup, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """A page with the dashboard's headers."""
    return HTMLResponse(content, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request: the request, its page frame, path parameters, form fields."""

    request: Request
    frame: Frame
    params: dict[str, str]
    form: dict[str, str]


class Views:
    """The pages and actions of one service; ``clock`` gives epoch seconds (tests set it)."""

    def __init__(
        self, service: DashboardService, analytics: Analytics, clock: Callable[[], float]
    ) -> None:
        self.service = service
        self.analytics = analytics
        self.clock = clock

    # helpers

    def _error(self, call: Call, status: int, title: str, message: str) -> HTMLResponse:
        return html_response(error_page(call.frame, title, message), status)

    def _done(self, call: Call, path: str, notice: str) -> RedirectResponse:
        return RedirectResponse(f"{call.frame.base}{path}?done={notice}", status_code=303)

    @staticmethod
    def _notice(call: Call) -> str:
        return NOTICES.get(call.request.query_params.get("done", ""), "")

    @staticmethod
    def _actor(call: Call) -> str:
        client = call.request.client
        return f"dashboard@{client.host}" if client is not None else "dashboard"

    # the overview

    async def _health(self) -> Health:
        service = self.service
        try:
            reachable = await service.ping()
        except Exception:  # the page shows it; the service logs its own failures
            reachable = False
        return Health(
            reachable=reachable,
            degraded=bool(getattr(service.store, "degraded", False)),
            store=type(service.store).__name__,
            policy=service.policy.name,
            registry=service.registry is not None,
            analytics=self.analytics.recent(1) is not None,
        )

    def rate(self) -> Markup:
        """The overview's chart alone: what its page fetches every few seconds."""
        return rate_chart(self.analytics.recent(RATE_SECONDS), self.clock())

    async def overview(self, call: Call) -> Response:
        now = self.clock()
        since = datetime.fromtimestamp(now, UTC) - timedelta(hours=1)
        analytics = self.analytics
        top_requests = await run_in_threadpool(
            lambda: analytics.top_keys(by="requests", since=since, limit=10)
        )
        top_refusals = await run_in_threadpool(
            lambda: analytics.top_keys(by="refusals", since=since, limit=10)
        )
        try:
            blocks = await run_in_threadpool(self.service.store.lockouts.blocks)
        except StoreUnavailableError:
            blocks = None
        if top_refusals is not None:  # keys that were never refused are no refusers
            top_refusals = [(key, count) for key, count in top_refusals if count]
        page = overview_page(
            call.frame, health=await self._health(), rate=self.rate(), top_requests=top_requests,
            top_refusals=top_refusals, blocks=blocks, now=now, notice=self._notice(call),
        )  # fmt: skip
        return html_response(page)

    async def rate_partial(self, call: Call) -> Response:
        return html_response(self.rate())

    async def unblock(self, call: Call) -> Response:
        key = call.form.get("key", "")
        if not key:
            return self._error(call, 422, "Nothing to unblock", "The form named no block.")
        try:
            lifted = await run_in_threadpool(self.service.store.lockouts.unblock, key)
        except StoreUnavailableError:
            return self._error(call, 503, "Store unavailable", "The store does not answer.")
        if not lifted:
            return self._done(call, "", "not-blocked")
        await self._record("block.lift", call, key)
        return self._done(call, "", "unblocked")

    async def _record(self, kind: str, call: Call, target: str) -> None:
        registry = self.service.registry
        if registry is not None:
            actor = self._actor(call)
            await run_in_threadpool(lambda: registry.record(kind, actor=actor, target=target))

    # keys

    async def keys(self, call: Call) -> Response:
        registry = self.service.registry
        records = [] if registry is None else await run_in_threadpool(registry.list_keys)
        listed = [_record_view(record) for record in records]
        ids = {key.id for key in listed}
        listed += [_policy_view(entry) for entry in self.service.policy.keys if entry.id not in ids]
        listed.sort(key=lambda key: (key.id, key.source))
        return html_response(keys_page(call.frame, listed))

    async def _key(self, key_id: str) -> KeyView | None:
        registry = self.service.registry
        record = None if registry is None else await run_in_threadpool(registry.get_key, key_id)
        if record is not None and not record.revoked:
            return _record_view(record)
        entry = next((entry for entry in self.service.policy.keys if entry.id == key_id), None)
        if entry is not None:
            return _policy_view(entry)
        return None if record is None else _record_view(record)

    async def key(self, call: Call) -> Response:
        key_id = call.params["key_id"]
        key = await self._key(key_id)
        if key is None:
            return self._error(call, 404, "No such key", f"There is no key with id {key_id!r}.")
        range_name = call.request.query_params.get("range", "hour")
        period = RANGES.get(range_name)
        if period is None:
            return self._error(call, 422, "No such range", "The range is hour, day or month.")
        problem = ""
        try:
            usage = await self.service.limiter.usage(key_id) if key.revoked_at is None else None
        except StoreUnavailableError:
            usage, problem = None, "The store does not answer: the counters cannot be read now."
        if usage is None and not problem:
            problem = "This key is not live (revoked, or its plan is not in the policy)."
        now = self.clock()
        start = (math.floor(now / period.seconds) - period.count + 1) * period.seconds
        points = await self._series(key_id, start, now, period.step)
        hour = RANGES["hour"]
        if range_name == "hour":
            recent = points
        else:
            hour_start = (math.floor(now / hour.seconds) - hour.count + 1) * hour.seconds
            recent = await self._series(key_id, hour_start, now, hour.step)
        chart = utilization_chart(period, points, start, period_limit(usage, period.seconds))
        page = key_page(
            call.frame, key, plans=sorted(self.service.policy.plans), usage=usage,
            usage_problem=problem, chart=chart, range_name=range_name, refusals=recent,
            notice=self._notice(call),
        )  # fmt: skip
        return html_response(page)

    async def _series(
        self, key_id: str, start: float, end: float, step: str
    ) -> list[object] | None:
        analytics = self.analytics
        points = await run_in_threadpool(
            lambda: analytics.usage_series(
                key=key_id,
                start=datetime.fromtimestamp(start, UTC),
                end=datetime.fromtimestamp(end, UTC),
                step=step,
            )
        )
        return None if points is None else list(points)

    async def _changeable(self, call: Call) -> tuple[Registry, KeyRecord] | Response:
        """The registry and the live record of the key to change, else the page saying why not."""
        key_id = call.params["key_id"]
        registry = self.service.registry
        if registry is None:
            return self._error(
                call, 409, "No registry", "This service has no registry of keys to change."
            )
        record = await run_in_threadpool(registry.get_key, key_id)
        if record is None or record.revoked:
            if any(entry.id == key_id for entry in self.service.policy.keys):
                return self._error(
                    call, 409, "A key of the policy file",
                    f"Key {key_id!r} is declared in the policy file: change it there.",
                )  # fmt: skip
            if record is None:
                return self._error(call, 404, "No such key", f"No key with id {key_id!r}.")
            return self._error(call, 409, "Revoked", f"Key {key_id!r} is revoked already.")
        return registry, record

    async def revoke(self, call: Call) -> Response:
        found = await self._changeable(call)
        if isinstance(found, Response):
            return found
        registry, record = found
        path = f"/keys/{record.id}"
        if call.form.get("confirm") != "yes":
            page = confirm_page(
                call.frame, title=f"Revoke key {record.id}?",
                explanation="Every replica refuses it within a second. A revoked key stays "
                "revoked: its callers need a new key.",
                action=f"{call.frame.base}{path}/revoke", fields={},
                button=f"Revoke {record.id}", cancel=f"{call.frame.base}{path}",
            )  # fmt: skip
            return html_response(page)
        actor = self._actor(call)
        failed = await self._registry_change(call, lambda: registry.revoke(record.id, actor=actor))
        return failed or self._done(call, path, "revoked")

    async def plan(self, call: Call) -> Response:
        found = await self._changeable(call)
        if isinstance(found, Response):
            return found
        registry, record = found
        plan = call.form.get("plan", "")
        policy = self.service.policy
        if plan not in policy.plans:
            known = ", ".join(sorted(policy.plans))
            return self._error(
                call, 422, "No such plan", f"The policy has no plan {plan!r} (its plans: {known})."
            )
        path = f"/keys/{record.id}"
        if plan == record.plan:
            return self._done(call, path, "same-plan")
        if call.form.get("confirm") != "yes":
            page = confirm_page(
                call.frame, title=f"Move key {record.id} to plan {plan}?",
                explanation=f"Its limits become those of plan {plan} (it is on {record.plan}); "
                "its own limits, if any, stay.",
                action=f"{call.frame.base}{path}/plan", fields={"plan": plan},
                button=f"Move {record.id} to {plan}", cancel=f"{call.frame.base}{path}",
            )  # fmt: skip
            return html_response(page)
        actor = self._actor(call)
        failed = await self._registry_change(
            call, lambda: registry.set_plan(record.id, plan, policy=policy, actor=actor)
        )
        return failed or self._done(call, path, "plan")

    async def _registry_change(
        self, call: Call, change: Callable[[], KeyRecord]
    ) -> Response | None:
        """Make ``change``; ``None`` when done (the limiter told), else the page of its refusal."""
        try:
            await run_in_threadpool(change)
        except InvalidKeyError as error:
            return self._error(call, 422, "Refused", str(error))
        except KeyNotFoundError as error:
            return self._error(call, 404, "No such key", str(error))
        except KeyConflictError as error:
            return self._error(call, 409, "Refused", str(error))
        await refresh_keys(self.service)
        return None

    # the audit log

    async def audit(self, call: Call) -> Response:
        query = call.request.query_params
        filters = AuditFilters(
            since=query.get("since", "").strip(),
            key=query.get("key", "").strip(),
            kind=query.get("kind", "").strip(),
        )
        try:
            since = _since(filters.since, self.clock())
        except ValueError as error:
            page = audit_page(call.frame, filters, None, problem=str(error), most=MAX_AUDIT)
            return html_response(page, 422)
        registry = self.service.registry
        events = None
        if registry is not None:
            events = await run_in_threadpool(
                lambda: registry.audit(
                    since=since,
                    key=filters.key or None,
                    kind=filters.kind or None,
                    newest_first=True,
                )
            )
        return html_response(audit_page(call.frame, filters, events, most=MAX_AUDIT))


def _since(text: str, now: float) -> datetime:
    """The audit filter's start: ISO 8601 (UTC without an offset), epoch seconds, or a day ago."""
    if not text:
        return datetime.fromtimestamp(now, UTC) - timedelta(days=1)
    try:
        return parse_moment(text)
    except ValueError as error:
        if str(error) == "out of range":
            raise ValueError(f"Since is out of range: {text!r}.") from None
        raise ValueError(
            f"Since must be a time such as 2026-12-07T10:00 (UTC) or epoch seconds, not {text!r}."
        ) from None


def _record_view(record: KeyRecord) -> KeyView:
    return KeyView(
        id=record.id, name=record.name, plan=record.plan, user=record.user, source="registry",
        created_at=record.created_at, revoked_at=record.revoked_at,
        limits=tuple(sorted(record.limits.items())),
    )  # fmt: skip


def _policy_view(entry: KeyEntry) -> KeyView:
    return KeyView(
        id=entry.id, name=entry.name or "", plan=entry.plan, user=entry.user, source="policy"
    )

"""The dashboard's pages as HTML: plain data in, :class:`~._html.Markup` out, no I/O.

Every page is one layout (:func:`page`): a skip link, the navigation, a
log-out form, the content in ``<main>``. Forms label every field, keep the
document's order as the focus order and POST with the session's CSRF token
in a hidden ``csrf`` field. Every list has its empty state in words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ...engine import LimitUsage
from ...registry import AuditEvent
from ...stores import Block
from ._charts import Series, bar, line_chart, usage_chart
from ._html import Markup, fill, join, when

__all__ = [
    "RANGES",
    "AuditFilters",
    "Frame",
    "Health",
    "KeyView",
    "Period",
    "audit_page",
    "confirm_page",
    "error_page",
    "key_page",
    "keys_page",
    "login_page",
    "overview_page",
    "rate_chart",
]

#: seconds the overview's chart spans, and how often its page refreshes it
RATE_SECONDS = 300
REFRESH_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Period:
    """A range of the key page's utilization chart: its periods and their labels."""

    title: str
    step: str
    seconds: int
    count: int
    label: str
    tick_every: int


RANGES = {
    "hour": Period("Last hour", "minute", 60, 60, "%H:%M", 10),
    "day": Period("Last day", "hour", 3600, 24, "%H:00", 3),
    "month": Period("Last 30 days", "day", 86400, 30, "%m-%d", 5),
}


@dataclass(frozen=True, slots=True)
class Frame:
    """What every page of a session shares: where the dashboard is, the session's CSRF token."""

    base: str
    csrf: str


def _csrf(frame: Frame) -> Markup:
    return fill('<input type="hidden" name="csrf" value="{csrf}">', csrf=frame.csrf)


def _head(base: str, title: str, script: bool) -> Markup:
    scripts = (
        fill('<script src="{base}/static/dashboard.js" defer></script>', base=base)
        if script
        else Markup("")
    )
    return fill(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{title} - ratekeeper</title>"
        '<link rel="icon" href="{base}/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="{base}/static/dashboard.css">{scripts}</head>',
        title=title, base=base, scripts=scripts,
    )  # fmt: skip


_NAV = (("overview", "", "Overview"), ("keys", "/keys", "Keys"), ("audit", "/audit", "Audit log"))


def page(
    frame: Frame, title: str, content: Markup, *, current: str = "", script: bool = False
) -> Markup:
    """A whole page of a session: navigation, log-out, ``content`` in ``<main>``."""
    links = join(
        fill(
            '<a href="{base}{path}"{current}>{label}</a>',
            base=frame.base, path=path, label=label,
            current=Markup(' aria-current="page"') if name == current else Markup(""),
        )
        for name, path, label in _NAV
    )  # fmt: skip
    return fill(
        '{head}<body><a class="skip" href="#main">Skip to the content</a>'
        '<header class="topbar"><a class="brand" href="{base}">ratekeeper</a>'
        '<nav aria-label="Dashboard">{links}</nav>'
        '<form class="logout" method="post" action="{base}/logout">{csrf}'
        '<button type="submit">Log out</button></form></header>'
        '<main id="main" tabindex="-1">{content}</main></body></html>',
        head=_head(frame.base, title, script), base=frame.base, links=links,
        csrf=_csrf(frame), content=content,
    )  # fmt: skip


def login_page(base: str, next_path: str, message: str = "") -> Markup:
    """The login form: the admin token, once; the session cookie keeps it for 12 hours."""
    alert = fill('<p class="alert" role="alert">{m}</p>', m=message) if message else Markup("")
    return fill(
        '{head}<body><main id="main" class="login">'
        "<h1>ratekeeper dashboard</h1>{alert}"
        '<form method="post" action="{base}/login">'
        '<input type="hidden" name="next" value="{next}">'
        '<input type="text" name="username" value="admin" autocomplete="username" hidden>'
        '<label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        'required autofocus>'
        '<button type="submit">Log in</button></form>'
        "<p class=\"hint\">The token of the admin API (<code>--admin-token-file</code> or "
        "<code>$RATEKEEPER_ADMIN_TOKEN</code>). Scripts may send "
        "<code>Authorization: Bearer &lt;token&gt;</code> instead.</p></main></body></html>",
        head=_head(base, "Log in", False), alert=alert, base=base, next=next_path,
    )  # fmt: skip


def error_page(frame: Frame, title: str, message: str) -> Markup:
    """A refusal in words, with the way back."""
    content = fill(
        '<h1>{title}</h1><p class="alert" role="alert">{message}</p>'
        '<p><a href="{base}">Back to the overview</a></p>',
        title=title, message=message, base=frame.base,
    )  # fmt: skip
    return page(frame, title, content)


# the overview


@dataclass(frozen=True, slots=True)
class Health:
    """The store as the overview shows it."""

    reachable: bool
    degraded: bool
    store: str
    policy: str
    registry: bool
    analytics: bool


def _health(health: Health) -> Markup:
    state = "ok" if health.reachable and not health.degraded else "trouble"
    store = "answers" if health.reachable else "does not answer"
    if health.degraded:
        store += "; degraded: answering from its fallback"
    return fill(
        '<section aria-labelledby="h-health"><h2 id="h-health">Health</h2>'
        '<dl class="facts" data-store="{state}">'
        "<dt>Store</dt><dd>{kind}: <strong class=\"state-{state}\">{store}</strong></dd>"
        "<dt>Policy</dt><dd>{policy}</dd>"
        "<dt>Registry</dt><dd>{registry}</dd>"
        "<dt>Usage analytics</dt><dd>{analytics}</dd></dl></section>",
        state=state, kind=health.store, store=store, policy=health.policy,
        registry="yes" if health.registry else "none (start with --registry)",
        analytics=_analytics_state(health),
    )  # fmt: skip


def _analytics_state(health: Health) -> str:
    if health.analytics:
        return "on"
    return "off" if health.registry else "off (they need a registry)"


def rate_chart(recent: Sequence[tuple[int, int, int]] | None, now: float) -> Markup:
    """Requests per second allowed and refused in this process, over the last 5 minutes."""
    if recent is None:
        return Markup(
            '<p class="empty" data-chart-empty="off">Usage analytics are off: this service '
            "counts nothing (they need a registry: <code>--registry URL</code>).</p>"
        )
    last = int(now)
    first = last - RATE_SECONDS + 1
    allowed, refused = [0] * RATE_SECONDS, [0] * RATE_SECONDS
    for second, admitted, denied in recent:
        if first <= second <= last:
            allowed[second - first] += admitted
            refused[second - first] += denied
    labels = [when(first + index)[11:] for index in range(RATE_SECONDS)]
    chart = line_chart(
        chart_id="chart-rate",
        title="Requests per second, allowed and refused, last 5 minutes (UTC)",
        labels=labels,
        series=[Series("allowed", "Allowed", allowed), Series("refused", "Refused", refused)],
        unit="second",
        tick_every=60,
        rows_shown=lambda index: bool(allowed[index] or refused[index]),
    )
    if not any(allowed) and not any(refused):
        chart += Markup('<p class="empty">No requests in the last 5 minutes.</p>')
    return chart


def _top_table(
    frame: Frame, caption: str, rows: Sequence[tuple[str, int]] | None, name: str, what: str
) -> Markup:
    if rows is None:
        body = Markup('<p class="empty">No usage analytics on this service.</p>')
    elif not rows:
        body = fill('<p class="empty">No {what} in the last hour.</p>', what=what)
    else:
        top = max(count for _, count in rows)
        lines = join(
            fill(
                '<tr data-key="{key}" data-value="{count}"><th scope="row">{link}</th>'
                '<td class="number">{count}</td><td class="barcell">{bar}</td></tr>',
                key=key, count=count, link=_key_link(frame, key), bar=bar(count, top, name),
            )
            for key, count in rows
        )  # fmt: skip
        body = fill(
            '<table class="top" data-top="{name}"><thead><tr><th scope="col">Key</th>'
            '<th scope="col" class="number">{what}</th><th scope="col">'
            '<span class="visually-hidden">Share</span></th></tr></thead>'
            "<tbody>{lines}</tbody></table>",
            name=name, what=what.capitalize(), lines=lines,
        )  # fmt: skip
    return fill(
        '<section aria-labelledby="h-top-{name}"><h2 id="h-top-{name}">{caption}</h2>'
        "{body}</section>",
        name=name, caption=caption, body=body,
    )  # fmt: skip


def _key_link(frame: Frame, key: str) -> Markup:
    if key == "anonymous":
        return Markup("anonymous <small>(callers without a key)</small>")
    return fill('<a href="{base}/keys/{key}">{key}</a>', base=frame.base, key=key)


def _blocks(frame: Frame, blocks: Sequence[Block] | None, now: float) -> Markup:
    if blocks is None:
        body = Markup('<p class="alert">The store does not answer: blocks cannot be read.</p>')
    elif not blocks:
        body = Markup('<p class="empty">No client is blocked.</p>')
    else:
        rows = join(
            fill(
                '<tr data-block="{key}"><th scope="row"><code>{key}</code></th>'
                "<td>{until} <small>(in {left})</small></td>"
                '<td class="number">{failures}</td><td class="number">{streak}</td>'
                '<td><form method="post" action="{base}/blocks/unblock">{csrf}'
                '<input type="hidden" name="key" value="{key}">'
                '<button type="submit" aria-label="Unblock {key}">Unblock</button>'
                "</form></td></tr>",
                key=block.key, until=when(block.until), left=_duration(block.until - now),
                failures=block.failures, streak=block.streak, base=frame.base,
                csrf=_csrf(frame),
            )
            for block in sorted(blocks, key=lambda block: block.key)
        )  # fmt: skip
        body = fill(
            '<table class="blocks"><thead><tr><th scope="col">Blocked</th>'
            '<th scope="col">Until (UTC)</th><th scope="col" class="number">Failures</th>'
            '<th scope="col" class="number">Streak</th><th scope="col">Action</th></tr></thead>'
            "<tbody>{rows}</tbody></table>",
            rows=rows,
        )
    return fill(
        '<section aria-labelledby="h-blocks"><h2 id="h-blocks">Active blocks</h2>{body}</section>',
        body=body,
    )


def _duration(seconds: float) -> str:
    seconds = max(math.ceil(seconds), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def overview_page(
    frame: Frame,
    *,
    health: Health,
    rate: Markup,
    top_requests: Sequence[tuple[str, int]] | None,
    top_refusals: Sequence[tuple[str, int]] | None,
    blocks: Sequence[Block] | None,
    now: float,
    notice: str = "",
) -> Markup:
    """The page an operator leaves open: traffic now, who uses most, who is blocked."""
    content = fill(
        "<h1>Overview</h1>{notice}"
        '<section aria-labelledby="h-rate"><h2 id="h-rate">Requests per second</h2>'
        '<div id="rate" data-refresh="{base}/partials/rate" data-every="{every}" '
        'aria-live="off">{rate}</div></section>'
        '<div class="columns">{top_requests}{top_refusals}</div>'
        "{blocks}{health}",
        notice=_notice(notice), base=frame.base, every=REFRESH_SECONDS, rate=rate,
        top_requests=_top_table(frame, "Top keys by requests, last hour", top_requests,
                                "requests", "requests"),
        top_refusals=_top_table(frame, "Top keys by refusals, last hour", top_refusals,
                                "refusals", "refusals"),
        blocks=_blocks(frame, blocks, now), health=_health(health),
    )  # fmt: skip
    return page(frame, "Overview", content, current="overview", script=True)


def _notice(text: str) -> Markup:
    return fill('<p class="notice" role="status">{t}</p>', t=text) if text else Markup("")


# keys


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as the dashboard lists it: the registry's or the policy file's."""

    id: str
    name: str
    plan: str
    user: str | None
    source: str
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    limits: tuple[tuple[str, object], ...] = ()

    @property
    def changeable(self) -> bool:
        return self.source == "registry" and self.revoked_at is None


def keys_page(frame: Frame, keys: Sequence[KeyView]) -> Markup:
    """Every key of the registry and the policy file, each a link to its page."""
    if not keys:
        body = Markup(
            '<p class="empty">No keys yet: create one with <code>ratekeeper keys create</code> '
            "or <code>POST /admin/keys</code>.</p>"
        )
    else:
        rows = join(
            fill(
                '<tr><th scope="row"><a href="{base}/keys/{id}">{id}</a></th><td>{name}</td>'
                "<td>{plan}</td><td>{source}</td><td>{created}</td><td>{state}</td></tr>",
                base=frame.base, id=key.id, name=key.name or "-", plan=key.plan,
                source=key.source, created=when(key.created_at),
                state="revoked " + when(key.revoked_at) if key.revoked_at else "live",
            )
            for key in keys
        )  # fmt: skip
        body = fill(
            '<table class="keys"><thead><tr><th scope="col">Id</th><th scope="col">Name</th>'
            '<th scope="col">Plan</th><th scope="col">From</th><th scope="col">Created (UTC)'
            '</th><th scope="col">State</th></tr></thead><tbody>{rows}</tbody></table>',
            rows=rows,
        )
    return page(frame, "Keys", fill("<h1>Keys</h1>{body}", body=body), current="keys")


def period_limit(usage: Sequence[LimitUsage] | None, seconds: int) -> int | None:
    """The most a key may use in one period of ``seconds``: its tightest rate, scaled.

    A rate of N per window W lets at most N * ceil(seconds / W) through in a
    period (N for a window longer than the period); caps count requests in
    flight, not a use over time, and are left out. ``None``: no rate limits it.
    """
    ceilings = [
        item.limit * math.ceil(seconds / item.window) if item.window <= seconds else item.limit
        for item in usage or ()
        if item.window and not item.shadow
    ]
    return min(ceilings) if ceilings else None


def _limits(usage: Sequence[LimitUsage] | None, problem: str) -> Markup:
    if usage is None:
        return fill('<p class="empty">{p}</p>', p=problem)
    if not usage:
        return Markup('<p class="empty">No limit counts this key alone: it is unlimited.</p>')
    rows = join(
        fill(
            '<tr data-limit-name="{name}" data-limit="{limit}" data-remaining="{remaining}">'
            '<th scope="row">{name}{shared}</th><td>{kind}</td><td class="number">{limit}</td>'
            '<td class="number">{remaining}</td><td class="barcell">{bar}</td>'
            "<td>{reset}</td></tr>",
            name=item.name, limit=item.limit, remaining=item.remaining,
            shared=Markup(" <small>(shared)</small>") if item.shared else Markup(""),
            kind=_window(item.window), bar=bar(item.limit - item.remaining, item.limit, "used"),
            reset=when(item.reset_at) if item.reset_at is not None else "as requests end",
        )
        for item in usage
    )  # fmt: skip
    return fill(
        '<table class="limits"><thead><tr><th scope="col">Limit</th><th scope="col">Per</th>'
        '<th scope="col" class="number">Allowed</th><th scope="col" class="number">Remaining now'
        '</th><th scope="col">Used'
        '</th><th scope="col">Full again (UTC)</th></tr></thead><tbody>{rows}</tbody></table>',
        rows=rows,
    )


def _window(window: float | None) -> str:
    if window is None:
        return "in flight at once"
    for seconds, name in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if window >= seconds and window % seconds == 0:
            count = int(window // seconds)
            return name if count == 1 else f"{count} {name}s"
    return f"{window:g} s"


def utilization_chart(
    period: Period, points: Sequence[object] | None, start: float, limit: int | None
) -> Markup:
    """What a key used in each period of ``period``, against what it may use."""
    if points is None:
        return Markup(
            '<p class="empty">Usage analytics are off: this service counts nothing (they '
            "need a registry: <code>--registry URL</code>).</p>"
        )
    used, refused = [0] * period.count, [0] * period.count
    for point in points:
        at = getattr(point, "at", None)
        if not isinstance(at, datetime):
            continue
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        index = int((at.timestamp() - start) // period.seconds)
        if 0 <= index < period.count:
            used[index] += int(getattr(point, "cost", 0))
            refused[index] += int(getattr(point, "refused", 0))
    labels = [
        datetime.fromtimestamp(start + index * period.seconds, UTC).strftime(period.label)
        for index in range(period.count)
    ]
    chart = usage_chart(
        chart_id="chart-usage",
        title=f"Used against the limit, {period.title.lower()} (UTC), per {period.step}",
        labels=labels, used=used, refused=refused, limit=limit, unit=period.step,
        tick_every=period.tick_every,
    )  # fmt: skip
    if not any(used) and not any(refused):
        chart += fill('<p class="empty">No requests with this key in the {p}.</p>',
                      p=period.title.lower())  # fmt: skip
    return chart


_REASONS = (
    ("refused_rate", "Rate"),
    ("refused_cap", "Cap"),
    ("refused_block", "Block"),
    ("refused_unknown_key", "Unknown key"),
    ("refused_other", "Other"),
)


def _moment(point: object) -> float:
    at = getattr(point, "at", None)
    if not isinstance(at, datetime):
        return 0.0
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def _refusals(points: Sequence[object] | None) -> Markup:
    if points is None:
        return Markup('<p class="empty">No usage analytics on this service.</p>')
    refused = [point for point in points if int(getattr(point, "refused", 0))]
    if not refused:
        return Markup('<p class="empty">No refusals in the last hour.</p>')
    head = join(
        fill('<th scope="col" class="number">{label}</th>', label=label) for _, label in _REASONS
    )
    rows = join(
        Markup("<tr>")
        + fill('<th scope="row">{at}</th>', at=when(getattr(point, "at", None))[:16])
        + join(
            fill('<td class="number">{n}</td>', n=int(getattr(point, field, 0)))
            for field, _ in _REASONS
        )
        + Markup("</tr>")
        for point in sorted(refused, key=_moment, reverse=True)
    )
    return fill(
        '<table class="refusals"><thead><tr><th scope="col">Minute (UTC)</th>{head}</tr>'
        "</thead><tbody>{rows}</tbody></table>",
        head=head, rows=rows,
    )  # fmt: skip


def key_page(
    frame: Frame,
    key: KeyView,
    *,
    plans: Sequence[str],
    usage: Sequence[LimitUsage] | None,
    usage_problem: str,
    chart: Markup,
    range_name: str,
    refusals: Sequence[object] | None,
    notice: str = "",
) -> Markup:
    """One key: its plan, each limit's remaining now, its use over time, its refusals."""
    ranges = join(
        fill(
            '<a href="{base}/keys/{id}?range={name}"{current}>{title}</a>',
            base=frame.base, id=key.id, name=name, title=period.title,
            current=Markup(' aria-current="true"') if name == range_name else Markup(""),
        )
        for name, period in RANGES.items()
    )  # fmt: skip
    own = ", ".join(f"{name}: {value}" for name, value in key.limits) or "its plan's"
    content = fill(
        "<h1>Key <code>{id}</code></h1>{notice}"
        '<dl class="facts"><dt>Name</dt><dd>{name}</dd><dt>Plan</dt><dd data-plan="{plan}">'
        "{plan}</dd><dt>Own limits</dt><dd>{own}</dd><dt>User</dt><dd>{user}</dd>"
        "<dt>From</dt><dd>{source}</dd><dt>Created (UTC)</dt><dd>{created}</dd>"
        "<dt>State</dt><dd>{state}</dd></dl>"
        '<section aria-labelledby="h-limits"><h2 id="h-limits">Limits now</h2>{limits}</section>'
        '<section aria-labelledby="h-usage"><h2 id="h-usage">Utilization</h2>'
        '<nav class="ranges" aria-label="Time range">{ranges}</nav>{chart}</section>'
        '<section aria-labelledby="h-refusals"><h2 id="h-refusals">Recent refusals</h2>'
        "{refusals}</section>{manage}",
        id=key.id, notice=_notice(notice), name=key.name or "-", plan=key.plan, own=own,
        user=key.user or "-", source=key.source, created=when(key.created_at),
        state="revoked " + when(key.revoked_at) if key.revoked_at else "live",
        limits=_limits(usage, usage_problem), ranges=ranges, chart=chart,
        refusals=_refusals(refusals), manage=_manage(frame, key, plans),
    )  # fmt: skip
    return page(frame, f"Key {key.id}", content, current="keys")


def _manage(frame: Frame, key: KeyView, plans: Sequence[str]) -> Markup:
    if key.source == "policy":
        body = Markup(
            '<p class="empty">This key is declared in the policy file: change it there and '
            "reload the policy.</p>"
        )
    elif key.revoked_at is not None:
        body = Markup('<p class="empty">This key is revoked: a revoked key stays revoked.</p>')
    else:
        options = join(
            fill(
                '<option value="{plan}"{selected}>{plan}</option>',
                plan=plan, selected=Markup(" selected") if plan == key.plan else Markup(""),
            )
            for plan in plans
        )  # fmt: skip
        body = fill(
            '<form class="inline" method="post" action="{base}/keys/{id}/plan">{csrf}'
            '<label for="plan">Plan</label><select id="plan" name="plan">{options}</select>'
            '<button type="submit">Change plan…</button></form>'
            '<form class="inline" method="post" action="{base}/keys/{id}/revoke">{csrf}'
            '<button type="submit" class="danger">Revoke…</button></form>'
            '<p class="hint">Both ask for a confirmation first.</p>',
            base=frame.base, id=key.id, csrf=_csrf(frame), options=options,
        )  # fmt: skip
    return fill(
        '<section aria-labelledby="h-manage"><h2 id="h-manage">Manage</h2>{body}</section>',
        body=body,
    )


def confirm_page(
    frame: Frame, *, title: str, explanation: str, action: str, fields: dict[str, str],
    button: str, cancel: str,
) -> Markup:  # fmt: skip
    """The confirmation step of a change: what will happen, a button to do it, a way out."""
    hidden = join(
        fill('<input type="hidden" name="{name}" value="{value}">', name=name, value=value)
        for name, value in fields.items()
    )
    content = fill(
        '<h1>{title}</h1><p>{explanation}</p><form method="post" action="{action}">{csrf}'
        '<input type="hidden" name="confirm" value="yes">{hidden}'
        '<button type="submit" class="danger">{button}</button> '
        '<a class="cancel" href="{cancel}">Cancel</a></form>',
        title=title, explanation=explanation, action=action, csrf=_csrf(frame), hidden=hidden,
        button=button, cancel=cancel,
    )  # fmt: skip
    return page(frame, title, content, current="keys")


# the audit log


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """The audit view's filters as given (text, so the form shows them back)."""

    since: str = ""
    key: str = ""
    kind: str = ""


#: kinds the filter suggests (others may be written: any text is accepted)
AUDIT_KINDS = (
    "key.create", "key.revoke", "key.plan", "key.limits", "key.reset", "block.start",
    "block.lift", "block.end", "policy.reload", "policy.reload_refused", "store.failure",
    "store.recovery",
)  # fmt: skip


def audit_page(
    frame: Frame,
    filters: AuditFilters,
    events: Sequence[AuditEvent] | None,
    *,
    problem: str = "",
    most: int,
) -> Markup:
    """The audit log, newest first, with its filters (since, key, kind)."""
    suggestions = join(fill('<option value="{k}"></option>', k=kind) for kind in AUDIT_KINDS)
    form = fill(
        '<form class="filters" method="get" action="{base}/audit">'
        '<div><label for="since">Since (UTC)</label><input id="since" name="since" '
        'value="{since}" placeholder="blank: the last 24 hours" aria-describedby="since-hint">'
        '<small id="since-hint">2026-12-07T10:00, or epoch seconds</small></div>'
        '<div><label for="key">Key</label><input id="key" name="key" value="{key}"></div>'
        '<div><label for="kind">Kind</label><input id="kind" name="kind" value="{kind}" '
        'list="kinds"><datalist id="kinds">{suggestions}</datalist></div>'
        '<button type="submit">Filter</button> <a href="{base}/audit">Clear</a></form>',
        base=frame.base, since=filters.since, key=filters.key, kind=filters.kind,
        suggestions=suggestions,
    )  # fmt: skip
    if problem:
        body = fill('<p class="alert" role="alert">{p}</p>', p=problem)
    elif events is None:
        body = Markup(
            '<p class="empty">This service has no registry: there is no audit log '
            "(start it with <code>--registry URL</code>).</p>"
        )
    elif not events:
        body = Markup('<p class="empty">No audit events match these filters.</p>')
    else:
        rows = join(
            fill(
                '<tr data-kind="{kind}"><td>{at}</td><td>{actor}</td><td><code>{kind}</code></td>'
                "<td>{target}</td><td><code>{detail}</code></td></tr>",
                at=when(event.at), actor=event.actor, kind=event.kind, target=event.target or "-",
                detail=json.dumps(event.detail, sort_keys=True, default=str)
                if event.detail else "",
            )
            for event in events  # newest first, as the registry gives them here
        )  # fmt: skip
        more = (
            fill(
                '<p class="hint">The latest {n} events are shown: narrow the filter '
                "(a kind, a key) for older ones.</p>",
                n=most,
            )
            if len(events) >= most
            else Markup("")
        )
        body = fill(
            '<p class="hint">{n}, newest first.</p>{more}<table class="audit"><thead><tr>'
            '<th scope="col">When (UTC)</th><th scope="col">Who</th><th scope="col">What</th>'
            '<th scope="col">On</th><th scope="col">Detail</th></tr></thead>'
            "<tbody>{rows}</tbody></table>",
            n="1 event" if len(events) == 1 else f"{len(events)} events", more=more, rows=rows,
        )  # fmt: skip
    content = fill("<h1>Audit log</h1>{form}{body}", form=form, body=body)
    return page(frame, "Audit log", content, current="audit")

"""The dashboard as one ASGI app: its files, then who is calling, then the checks of a POST.

Every request goes through the same gate, in this order, before any page
reads a parameter or changes anything (authentication before validation):

1. ``/dashboard/static/*`` (favicon, stylesheet, script) is served to anyone:
   the login form needs them, and they hold nothing of the service.
2. No admin token configured: 404, as ``/admin`` (the service does not even
   mount the dashboard then).
3. ``POST /dashboard/login`` checks the origin and the token (constant time)
   and sets the session cookie: HttpOnly, SameSite=Strict, Path=/dashboard
   (and Secure on HTTPS), valid 12 hours (:mod:`._session`).
4. Who is calling: ``Authorization: Bearer <admin token>`` (scripts) or a
   valid session cookie. Neither: a GET is answered with the login form
   itself (200; 401 for a wrong bearer token), not a redirect; any other
   method is 401 with the form, its body unread.
5. A POST must come from this dashboard: an ``Origin`` header, when sent,
   names this host, and a cookie session's form carries its CSRF token
   (:mod:`._session`). A POST with the bearer token needs no CSRF token: a
   browser never adds that header by itself, so another site cannot forge it.
6. The page or action (:mod:`._views`): unknown paths 404, other methods 405.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from .._guard import TokenGuard
from ._data import Analytics, DashboardService, ServiceAnalytics
from ._pages import Frame, error_page, login_page
from ._session import (
    COOKIE,
    LIFETIME,
    csrf_token,
    csrf_valid,
    new_session,
    session_valid,
    token_matches,
)
from ._views import Call, Views, html_response

__all__ = ["MAX_FORM", "DashboardApp"]

#: bytes of a form read at most (the largest, a plan change, is under 300)
MAX_FORM = 8 * 1024
#: the files under /dashboard/static/, by name: (content type, bytes)
_TYPES = {".svg": "image/svg+xml", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8"}  # fmt: skip

Handler = Callable[[Call], Awaitable[Response]]


def _static_files() -> dict[str, tuple[str, bytes]]:
    folder = resources.files(__package__).joinpath("static")
    return {
        item.name: (_TYPES[suffix], item.read_bytes())
        for item in folder.iterdir()
        if (suffix := "." + item.name.rpartition(".")[2]) in _TYPES
    }


@dataclass(frozen=True, slots=True)
class _Caller:
    """Who is calling: ``session`` is the cookie's value (``None`` with a bearer token)."""

    session: str | None


class DashboardApp:
    """``/dashboard`` of one service, to route as ``/dashboard{rest:path}``.

    ``analytics`` gives the usage numbers (the service's recorder and registry
    by default: :class:`~._data.ServiceAnalytics`); ``clock`` gives epoch
    seconds, for session expiry and the charts' "now".
    """

    def __init__(
        self,
        service: DashboardService,
        *,
        analytics: Analytics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.clock = clock
        #: wrong tokens (a login form's, a bearer's) per client address, into blocks
        self.guard = TokenGuard(service)
        self.views = Views(service, analytics or ServiceAnalytics(service), clock)
        self.static = _static_files()
        views = self.views
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/?"), views.overview),
            ("GET", re.compile(r"/partials/rate"), views.rate_partial),
            ("GET", re.compile(r"/keys/?"), views.keys),
            ("GET", re.compile(r"/keys/(?P<key_id>[^/]+)"), views.key),
            ("POST", re.compile(r"/keys/(?P<key_id>[^/]+)/revoke"), views.revoke),
            ("POST", re.compile(r"/keys/(?P<key_id>[^/]+)/plan"), views.plan),
            ("POST", re.compile(r"/blocks/unblock"), views.unblock),
            ("GET", re.compile(r"/audit/?"), views.audit),
            ("POST", re.compile(r"/logout"), self._logout),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self._answer(Request(scope, receive))
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Response:
        rest = request.path_params.get("rest", "")
        if rest and not rest.startswith("/"):  # /dashboardx is not the dashboard
            return _plain(404, "Not Found")
        path = rest or "/"
        method = "GET" if request.method == "HEAD" else request.method
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"), method)
        token = self.service.admin_token
        if not token:
            return _plain(404, "Not Found: the dashboard is off (no admin token is configured)")
        base = request.scope.get("root_path", "") + "/dashboard"
        presents = "authorization" in request.headers or (path == "/login" and method == "POST")
        if presents:  # a token to compare: not from an address that guessed too often
            wait = await self.guard.blocked_for(request)
            if wait:
                message = f"Too many wrong tokens from this address: try again in {wait} s."
                return html_response(
                    login_page(base, base, message), 429, {"Retry-After": str(wait)}
                )
        if path == "/login":
            return await self._login(request, method, token, base)
        caller = self._caller(request, token)
        if caller is None:
            if "authorization" in request.headers:
                await self.guard.failed(request)
            return self._login_form(request, method, base)
        session = caller.session
        frame = Frame(base, csrf_token(token, session if session is not None else "bearer"))
        form: dict[str, str] = {}
        if method == "POST":
            if not _same_origin(request):
                return self._refused(frame, "The form came from another site.")
            read = await _form(request)
            if isinstance(read, Response):
                return read
            form = read
            if session is not None and not csrf_valid(token, session, form.get("csrf", "")):
                return self._refused(frame, "The form is stale: reload the page and try again.")
        return await self._route(Call(request, frame, {}, form), method, path)

    async def _route(self, call: Call, method: str, path: str) -> Response:
        allowed = []
        for verb, pattern, handler in self.routes:
            matched = pattern.fullmatch(path)
            if matched is None:
                continue
            if verb == method:
                params = dict(matched.groupdict())
                return await handler(Call(call.request, call.frame, params, call.form))
            allowed.append(verb)
        if allowed:
            return html_response(
                error_page(call.frame, "Method not allowed", f"This page takes {allowed[0]}."),
                405,
                {"Allow": ", ".join(sorted({*allowed, "HEAD"} if "GET" in allowed else allowed))},
            )
        return html_response(
            error_page(call.frame, "Not found", "The dashboard has no such page."), 404
        )

    # who is calling

    def _caller(self, request: Request, token: str) -> _Caller | None:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, given = authorization.partition(" ")
            matched = token_matches(given.strip(), token)  # whatever the scheme: same cost
            return _Caller(None) if matched and scheme.lower() == "bearer" else None
        value = _cookie(request)
        if value is not None and session_valid(token, value, self.clock()):
            return _Caller(value)
        return None

    def _login_form(self, request: Request, method: str, base: str) -> Response:
        """The answer to a caller without credentials: the form, for a browser to log in."""
        status = 200
        if "authorization" in request.headers or method != "GET":
            status = 401
        message = ""
        if status == 200 and _cookie(request) is not None:
            message = "Your session has ended: log in again."
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        next_path = here if method == "GET" and "/partials/" not in here else base
        headers = {"X-Ratekeeper-Login": "required"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="ratekeeper admin"'
        return html_response(login_page(base, _local(next_path, base), message), status, headers)

    async def _login(self, request: Request, method: str, token: str, base: str) -> Response:
        if method == "GET":
            if self._caller(request, token) is not None:
                return RedirectResponse(base, status_code=303)
            return self._login_form(request, method, base)
        if method != "POST":
            return _plain(405, "Method Not Allowed", {"Allow": "GET, HEAD, POST"})
        if not _same_origin(request):
            return html_response(login_page(base, base, "The form came from another site."), 403)
        form = await _form(request)
        if isinstance(form, Response):
            return form
        next_path = _local(form.get("next", base), base)
        if not token_matches(form.get("token", ""), token):
            await self.guard.failed(request)
            return html_response(login_page(base, next_path, "That is not the admin token."), 401)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            COOKIE, new_session(token, self.clock()), max_age=LIFETIME, path=base,
            secure=request.url.scheme == "https", httponly=True, samesite="strict",
        )  # fmt: skip
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _logout(self, call: Call) -> Response:
        base = call.frame.base
        response = RedirectResponse(base, status_code=303)
        response.delete_cookie(
            COOKIE, path=base, secure=call.request.url.scheme == "https", httponly=True,
            samesite="strict",
        )  # fmt: skip
        return response

    def _refused(self, frame: Frame, reason: str) -> Response:
        return html_response(error_page(frame, "Refused", reason + " Nothing was changed."), 403)

    def _static(self, name: str, method: str) -> Response:
        found = self.static.get(name)
        if found is None:
            return _plain(404, "Not Found")
        if method != "GET":
            return _plain(405, "Method Not Allowed", {"Allow": "GET, HEAD"})
        media_type, body = found
        return Response(
            body,
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return HTMLResponse(f"<!doctype html><title>{status}</title><p>{text}</p>", status, headers)


def _cookie(request: Request) -> str | None:
    """The session cookie's value as sent (``request.cookies`` drops a malformed header)."""
    header = request.headers.get("cookie")
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # http.cookies.CookieError: a cookie header it cannot read
        return request.cookies.get(COOKIE)
    morsel = jar.get(COOKIE)
    return None if morsel is None else morsel.value


def _same_origin(request: Request) -> bool:
    """No ``Origin`` header (old browsers, scripts), or one naming the host asked."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


def _local(path: str, base: str) -> str:
    """``path`` when it is a page of this dashboard, else the overview: never another site."""
    if path == base:
        return path
    segments = path.partition("?")[0].split("/")
    local = path.startswith(base + "/") and "//" not in path and "\\" not in path
    if local and path.isprintable() and not {".", ".."} & set(segments):
        return path
    return base


async def _form(request: Request) -> dict[str, str] | Response:
    """The POST's URL-encoded form, first value of each field; or the answer refusing it.

    A body of another type has no fields: a cookie session's POST is then
    refused for its missing CSRF token, before anything reads it.
    """
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":  # no form: no fields (nor a CSRF token)
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return _plain(413, "Content Too Large")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return _plain(400, "Bad Request: the form is not UTF-8")
    return {name: values[0] for name, values in fields.items()}

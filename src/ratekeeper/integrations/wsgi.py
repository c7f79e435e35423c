"""A WSGI middleware that enforces a policy on every request of any WSGI app.

    app.wsgi_app = RateLimitMiddleware(app.wsgi_app, policy="policy.yaml")   # Flask
    application = RateLimitMiddleware(get_wsgi_application(), policy=...)    # Django wsgi.py

The same steps as the ASGI middleware, with the synchronous :class:`Limiter`:
decide (client IP from ``REMOTE_ADDR``, forwarding headers believed only from
the policy's trusted proxies); exempt requests go to the app untouched;
refusals are answered here; admitted requests get the rate limit headers added
through ``start_response``, feed their status to the login lockouts, and give
their concurrency leases back when the server closes the response iterable
(PEP 3333 has it call ``close()`` when the response is over, also after an
error or a client that went away), or at once when the app raises.

The path matched is ``SCRIPT_NAME + PATH_INFO``, the path the client asked
for, decoded as UTF-8 as ASGI servers do, so one policy reads the same behind
both middleware. Bytes that are not UTF-8 are kept apart (``surrogateescape``,
then escaped by ``Limiter.check``: see :mod:`ratekeeper.text`), so two
different paths never share a counter or a body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..http.answers import merge
from ..limiter import AsyncLimiter, Limiter, PolicyDecision
from ..policy import Policy
from ..stores.base import Store
from ._limiters import sync_limiter
from ._observing import Observing

if TYPE_CHECKING:
    from ..analytics import UsageRecorder
    from ..analytics.prometheus import RateLimitMetrics
    from ..registry import Registry

__all__ = ["RateLimitMiddleware"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _decoded(path: str) -> str:
    """The path's bytes (latin-1 per PEP 3333) read as UTF-8; undecodable bytes kept apart.

    A server that broke PEP 3333 and passed text already decoded is taken at its
    word: ``Limiter.check`` escapes whatever it holds.
    """
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:
        return path
    return raw.decode("utf-8", "surrogateescape")


class _LeasedResponse:
    """The app's response iterable; closing it gives the request's leases back."""

    __slots__ = ("_decision", "_limiter", "_result")

    def __init__(self, result: Iterable[bytes], limiter: Limiter, decision: PolicyDecision):
        self._result = result
        self._limiter = limiter
        self._decision = decision

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._limiter.release(self._decision)


class RateLimitMiddleware:
    """Enforce a policy in front of any WSGI app.

    ``policy`` is a path to a policy file or a loaded :class:`Policy`; ``store``
    defaults to a new :class:`MemoryStore`. Or pass ``limiter=``, an existing
    :class:`Limiter` (an :class:`AsyncLimiter` is turned into its sync twin on
    the same policy and store; so is any limiter when ``metrics`` or
    ``usage_registry`` are given, told what it was told and them besides).

    ``metrics`` and ``usage_registry``: as for the ASGI middleware
    (:mod:`ratekeeper.integrations._observing`): Prometheus counts of every
    decision, and usage analytics into a registry, flushed every second and
    at :meth:`close` (called at interpreter exit too: a WSGI app has no
    shutdown of its own to hook).
    """

    def __init__(
        self,
        app: WSGIApp,
        policy: Policy | str | Path | None = None,
        store: Store | None = None,
        *,
        limiter: Limiter | AsyncLimiter | None = None,
        metrics: RateLimitMetrics | None = None,
        usage_registry: str | Registry | None = None,
    ) -> None:
        self.app = app
        #: the hooks of ``metrics`` and ``usage_registry``, and closing them
        self.observing = Observing(metrics, usage_registry, store, limiter)
        observing = self.observing
        self.limiter = sync_limiter(policy, store, limiter, observing.hooks, observing.block_hooks)
        observing.bind(self.limiter)
        #: reads the request headers the policy reads, and no other
        self._headers = self.limiter.compiled.header_reader
        self._reads_headers = bool(self.limiter.compiled.wanted_headers)

    @property
    def recorder(self) -> UsageRecorder | None:
        """Counts decisions into ``usage_registry`` (``None``: analytics off, or closed)."""
        return self.observing.recorder

    def close(self) -> None:
        """Flush the usage counts and close the registry this middleware opened (if any);
        again, it does nothing."""
        self.observing.close()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        limiter = self.limiter
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not path.isascii():  # PEP 3333 carries the raw bytes as latin-1
            path = _decoded(path)
        decision = limiter.check(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path or "/",
            headers=self._headers.from_environ(environ) if self._reads_headers else None,
            client_ip=environ.get("REMOTE_ADDR") or "",
            lease=True,
        )
        if decision.exempt:
            return self.app(environ, start_response)
        if not decision.allowed:
            status, headers, body = limiter.answers.refusal(decision)
            start_response(status, headers)
            return [body]
        extra = list(decision.headers.items())
        lockouts = decision.lockouts
        if not extra and not lockouts and decision.lease is None:
            return self.app(environ, start_response)
        recorded = False

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            nonlocal recorded
            if lockouts and not recorded:
                recorded = True
                limiter.record_response(decision, int(status[:3]))
            return start_response(status, merge(headers, extra), exc_info)

        if decision.lease is None:
            return self.app(environ, start_with_headers)
        try:
            result = self.app(environ, start_with_headers)
        except BaseException:
            limiter.release(decision)
            raise
        return _LeasedResponse(result, limiter, decision)

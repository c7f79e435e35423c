"""The gateway: the ASGI middleware around the proxy, and nothing else.

Every rule of the middleware holds unchanged (``ratekeeper.integrations.asgi``;
it is the same class, not a copy): the decision before the upstream is asked,
429/401/503 answered by the middleware itself with the policy's body, the
rate-limit fields added to the upstream's answer with the upstream's own
fields winning (``http.answers.merge_raw``: a field the upstream set stays the
upstream's, the others are added), the upstream's status given to the login
lockouts as its status line passes, before the client has it, and concurrency
leases held until the proxy returns, that is until the last chunk of the
streamed response is sent or the client has gone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from ..engine import DecisionHook
from ..integrations.asgi import RateLimitMiddleware, Receive, Scope, Send
from ..limiter import AsyncLimiter
from ..policy import Policy
from ..stores.base import Store
from ._proxy import DEFAULT_LIMITS, DEFAULT_TIMEOUT, ProxyApp

__all__ = ["Gateway", "build_gateway"]


class Gateway:
    """An ASGI app: :class:`RateLimitMiddleware` (deciding with ``limiter``) around ``proxy``.

    ``limiter`` is where the CLI's registry watcher puts the registry's keys
    (``gateway.limiter.use_keys(entries)``). ``follow``, when given, is asked
    for the limiter to decide with at each request: a service that replaces
    its limiter on a policy reload hands its ``lambda: service.limiter`` here
    and the gateway follows (requests in flight finish on the old one, whose
    store is the same).
    """

    def __init__(
        self,
        proxy: ProxyApp,
        limiter: AsyncLimiter,
        *,
        follow: Callable[[], AsyncLimiter] | None = None,
    ) -> None:
        self.proxy = proxy
        self.middleware = RateLimitMiddleware(proxy, limiter=limiter)
        self._follow = follow

    @property
    def limiter(self) -> AsyncLimiter:
        """The limiter deciding the next request."""
        return self.middleware.limiter

    def use_limiter(self, limiter: AsyncLimiter) -> None:
        """Decide with ``limiter`` from the next request on (the same proxy and its pool)."""
        if limiter is not self.middleware.limiter:
            self.middleware = RateLimitMiddleware(self.proxy, limiter=limiter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._follow is not None:
            self.use_limiter(self._follow())
        await self.middleware(scope, receive, send)

    async def aclose(self) -> None:
        """Close the upstream connections (lifespan shutdown does it when the server runs one)."""
        await self.proxy.aclose()


def build_gateway(
    policy: Policy | str | Path,
    store: Store | None,
    upstream: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    hooks: Sequence[DecisionHook] = (),
    limits: httpx.Limits = DEFAULT_LIMITS,
    preserve_host: bool = False,
    max_body_size: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Gateway:
    """The gateway in front of ``upstream``, enforcing ``policy`` on ``store``.

    ``store`` ``None`` is a new :class:`~ratekeeper.stores.MemoryStore`;
    ``hooks`` are told of every decision. The other options are
    :class:`ProxyApp`'s. Serve the result with any ASGI server (``ratekeeper
    proxy`` runs it under uvicorn)::

        gateway = build_gateway("policy.yaml", RedisStore.from_url(url), "http://127.0.0.1:9000")
        uvicorn.run(gateway, host="0.0.0.0", port=8080, proxy_headers=False)
    """
    proxy = ProxyApp(
        upstream,
        timeout=timeout,
        limits=limits,
        preserve_host=preserve_host,
        max_body_size=max_body_size,
        transport=transport,
    )
    return Gateway(proxy, AsyncLimiter(policy, store, hooks=hooks))

"""Wrong admin tokens, counted per client address, turn into a block: no guessing the token.

The admin API and the dashboard's login compare the token in constant time,
which hides how close a guess came but not how many guesses are made. Every
wrong token (a 401) is a failure of the caller's address in the service's
own store (``store.lockouts``, so replicas on one Redis count together);
:data:`RULE` turns 10 of them in 10 minutes into a 10-minute block, doubling
for each block in a row up to a day. While blocked, the address is answered
429 with ``Retry-After`` before any token is compared: a right token waits
too, so a guesser learns nothing from the block. The block is listed with
the others (``/admin/blocks``, the dashboard) and lifted the same way.

The address is the one the policy's ``identity`` believes (trusted proxies
walked back), so that callers behind one proxy are counted apart. A store
that cannot answer does not lock the operators out: the guard then lets the
token decide alone.
"""

from __future__ import annotations

import contextlib
import math
from typing import Protocol

from starlette.requests import Request

from ..engine import LimiterCore
from ..stores import Store, StoreUnavailableError
from ..stores.lockouts import LockoutRule

__all__ = ["RULE", "TokenGuard"]

#: 10 wrong tokens in 10 minutes: blocked 10 minutes, doubling each time in a row, a day at most
RULE = LockoutRule(threshold=10, window=600.0, block=600.0, escalation=2.0, max_block=86400.0)
_KEY = "ratekeeper:admin-token:{%s}"


class GuardedService(Protocol):
    """What the guard reads of a service, at each request (a reload swaps them)."""

    @property
    def store(self) -> Store: ...

    @property
    def limiter(self) -> LimiterCore: ...


class TokenGuard:
    """Counts a service's wrong admin tokens per client address (``service``: its ``store``
    and ``limiter``, read at each request, so a reload is followed)."""

    def __init__(self, service: GuardedService, rule: LockoutRule = RULE) -> None:
        self._service = service
        self.rule = rule

    def key(self, request: Request) -> str:
        """The counter of the request's client address."""
        peer = request.client.host if request.client is not None else ""
        limiter = self._service.limiter
        headers = limiter.compiled.header_reader.from_asgi(request.scope["headers"])
        return _KEY % limiter.client_ip(peer, headers)

    async def blocked_for(self, request: Request) -> int:
        """Seconds the request's address is still blocked for; 0: not blocked."""
        store = self._service.store
        try:
            block = await store.lockouts.status_async(self.key(request))
        except StoreUnavailableError:
            return 0
        if not block.blocked:
            return 0
        return max(1, math.ceil((block.until_ns - store.now_ns()) / 1e9))

    async def failed(self, request: Request) -> None:
        """One more wrong token from the request's address."""
        with contextlib.suppress(StoreUnavailableError):  # the token alone decides then
            await self._service.store.lockouts.record_failure_async(self.key(request), self.rule)

"""The httpx transports: ``RetryTransport`` and its asyncio twin, on the one core.

Each wraps another transport (``httpx.HTTPTransport()`` /
``httpx.AsyncHTTPTransport()`` by default) and only turns httpx objects into
what the core reads: the request's method, URL, origin, credentials headers
and whether its body can be sent again (an ``httpx.ByteStream``: bytes given
up front; a generator or file streamed in is never resent), and a response's
status and fields.
"""

from __future__ import annotations

from typing import Any

import httpx

from ratekeeper.client._core import Answer
from ratekeeper.client._running import AsyncFace, Face, run, run_async
from ratekeeper.client._settings import Settings

__all__ = ["AsyncRetryTransport", "RetryTransport"]


def _flow(settings: Settings, request: httpx.Request) -> Any:
    url = request.url
    return settings.flow(
        request.method,
        str(url.copy_with(query=None)),
        (url.scheme, url.host, url.port),
        request.headers.get,
        isinstance(request.stream, httpx.ByteStream),
    )


def _answer(response: httpx.Response) -> Answer:
    return Answer(response.status_code, response.headers.get)


class RetryTransport(httpx.BaseTransport):
    """An httpx transport that waits as the server says, retries 429/503, and paces.

    ::

        client = httpx.Client(transport=RetryTransport())

    ``max_retries``: retries after the first attempt. ``max_wait``: the
    longest single wait (a server asking for more makes it give up at once).
    ``max_total_wait``: the most waited in all. ``pace``: wait for a spent
    quota's reset instead of spending requests on 429s (``smooth=True``
    spreads what is left; ``floor``: keep that many requests in hand). Giving
    up raises :class:`~ratekeeper.client.RetryError`. More options
    (``on_wait``, ``credential_headers``, ``max_keys``, the injected
    ``clock``/``wall_clock``/``sleep``/``random``): docs/client.md.
    """

    def __init__(
        self,
        wrapped: httpx.BaseTransport | None = None,
        *,
        max_retries: int = 5,
        max_wait: float = 60.0,
        max_total_wait: float | None = None,
        pace: bool = True,
        **options: Any,
    ) -> None:
        self.wrapped = wrapped if wrapped is not None else httpx.HTTPTransport()
        self.settings = Settings(
            max_retries=max_retries,
            max_wait=max_wait,
            max_total_wait=max_total_wait,
            pace=pace,
            **options,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        def discard(response: httpx.Response) -> None:
            try:
                response.read()
            finally:
                response.close()

        face = Face(
            send=lambda: self.wrapped.handle_request(request),
            answer=_answer,
            discard=discard,
            keep=lambda response: discard(response),
        )
        return run(_flow(self.settings, request), face, self.settings.clocks)

    def close(self) -> None:
        self.wrapped.close()


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`RetryTransport`: the same options, the same core.

    ::

        client = httpx.AsyncClient(transport=AsyncRetryTransport())
    """

    def __init__(
        self,
        wrapped: httpx.AsyncBaseTransport | None = None,
        *,
        max_retries: int = 5,
        max_wait: float = 60.0,
        max_total_wait: float | None = None,
        pace: bool = True,
        **options: Any,
    ) -> None:
        self.wrapped = wrapped if wrapped is not None else httpx.AsyncHTTPTransport()
        self.settings = Settings(
            max_retries=max_retries,
            max_wait=max_wait,
            max_total_wait=max_total_wait,
            pace=pace,
            **options,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            return await self.wrapped.handle_async_request(request)

        async def discard(response: httpx.Response) -> None:
            try:
                await response.aread()
            finally:
                await response.aclose()

        face = AsyncFace(send=send, answer=_answer, discard=discard, keep=discard)
        return await run_async(_flow(self.settings, request), face, self.settings.clocks)

    async def aclose(self) -> None:
        await self.wrapped.aclose()

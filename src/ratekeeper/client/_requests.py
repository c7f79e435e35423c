"""The requests adapter: ``RetryAdapter``, mounted on a ``Session``, on the one core.

::

    session = requests.Session()
    adapter = RetryAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)

It is requests' own ``HTTPAdapter`` (connection pools, TLS, proxies), whose
``send`` is driven by the sync runner: the same waits, retries, pacing and
hooks as the httpx transports, the same options. A body is sent again only
when it is bytes or text (a generator or a file is never resent). This
module imports requests; ``ratekeeper.client`` imports it only when
``RetryAdapter`` is first asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from ratekeeper.client._core import Answer
from ratekeeper.client._running import Face, run
from ratekeeper.client._settings import Settings

__all__ = ["RetryAdapter"]


class RetryAdapter(HTTPAdapter):
    """A requests transport adapter with ``RetryTransport``'s behaviour and options.

    ``adapter_options`` go to ``HTTPAdapter`` (``pool_connections``,
    ``pool_maxsize``, ...); requests' own ``max_retries`` (connection errors)
    stays off: this adapter's ``max_retries`` counts retries of answers.
    """

    def __init__(
        self,
        *,
        max_retries: int = 5,
        max_wait: float = 60.0,
        max_total_wait: float | None = None,
        pace: bool = True,
        adapter_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**dict(adapter_options or {}))
        self.settings = Settings(
            max_retries=max_retries,
            max_wait=max_wait,
            max_total_wait=max_total_wait,
            pace=pace,
            **options,
        )

    def send(  # type: ignore[override]  # requests' signature, keywords passed on as given
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        flow = self.settings.flow(
            request.method or "GET",
            f"{url.scheme}://{url.netloc}{url.path}",
            (url.scheme, url.hostname or "", url.port),
            request.headers.get,
            request.body is None or isinstance(request.body, bytes | str),
        )

        def discard(response: requests.Response) -> None:
            try:
                response.content  # noqa: B018  # read it: the connection goes back to the pool
            finally:
                response.close()

        def keep(response: requests.Response) -> None:
            response.content  # noqa: B018  # read it for the RetryError

        face = Face(
            send=lambda: super(RetryAdapter, self).send(request, **kwargs),
            answer=lambda response: Answer(response.status_code, response.headers.get),
            discard=discard,
            keep=keep,
        )
        return run(flow, face, self.settings.clocks)

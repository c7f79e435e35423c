"""Fixtures of the gateway's tests: the test upstream under a real uvicorn (``upstream.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from upstream import TestUpstream

from support.asgi_server import serving


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, TestUpstream]]:
    """The test upstream under uvicorn on a loopback port: its URL and the app (its records)."""
    app = TestUpstream()
    async with serving(app) as url:
        yield url, app

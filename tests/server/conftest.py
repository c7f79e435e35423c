"""Fixtures of the decision service's tests: services on a fake clock, closed after the test."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from service_client import MakeService, ServiceClient


@pytest.fixture
async def make_service(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeService]:
    """``make_service(policy, **options)``: a :class:`ServiceClient`, closed at the end."""
    if importlib.util.find_spec("sniffio") is None:
        # httpx's ASGITransport imports sniffio on every request (see tests/examples/conftest.py)
        monkeypatch.setitem(sys.modules, "sniffio", None)
    made: list[ServiceClient] = []

    def make(policy: Any, **options: Any) -> ServiceClient:
        client = ServiceClient(policy, **options)
        made.append(client)
        return client

    yield make
    for client in reversed(made):
        await client.close()

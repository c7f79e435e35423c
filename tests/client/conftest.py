"""Fixtures of the client's tests: a scripted upstream under uvicorn in a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from client_servers import ScriptedUpstream

from support.loopback import ThreadedServer


@pytest.fixture
def upstream() -> Iterator[tuple[str, ScriptedUpstream]]:
    """A :class:`ScriptedUpstream` on a loopback port: its URL and the app (script, hits)."""
    app = ScriptedUpstream()
    with ThreadedServer(app) as server:
        yield server.url, app

"""Fixtures of the analytics tests: registries on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratekeeper.registry import Registry
from support.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new registry database: SQLite in the test's directory, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'usage.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def registry(database_url: str) -> Iterator[Registry]:
    registry = Registry.open(database_url)
    yield registry
    registry.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.sqlite3'}"


@pytest.fixture(autouse=True)
def _no_sniffio(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx's ASGITransport imports sniffio per request (see tests/examples/conftest.py)."""
    if importlib.util.find_spec("sniffio") is None:
        monkeypatch.setitem(sys.modules, "sniffio", None)

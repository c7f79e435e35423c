"""The registry's databases: SQLite in the test's directory, and a real PostgreSQL.

``database_url`` runs a test once on each: ``sqlite:///<tmp>/registry.sqlite3``
and a fresh database of the session's PostgreSQL server (started by
``support.postgres``: never the machine's; skipped with the reason outside CI
when it cannot run, failed in CI).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratekeeper.policy import Policy, policy_from_text
from ratekeeper.registry import Registry
from support.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]

POLICY_TEXT = textwrap.dedent("""\
    version: 1
    name: reg
    anonymous_plan: anonymous
    limits:
      api: {by: api_key, algorithm: fixed_window}
      slots: {by: api_key, concurrency: 2}
      everyone: {by: global, rate: 100000/minute}
    plans:
      anonymous: {limits: {api: 2/minute}}
      free: {limits: {api: 5/minute}}
      pro: {limits: {api: 10/minute, slots: 4}}
    keys:
      - {key: demo-free, id: demo-free, plan: free}
    categories:
      - {name: api, match: /api/**, charge: [api, slots, everyone]}
    """)


@pytest.fixture(scope="session")
def policy_text() -> str:
    """The tests' policy as text, for variants of it."""
    return POLICY_TEXT


@pytest.fixture(scope="session")
def policy() -> Policy:
    return policy_from_text(POLICY_TEXT, name="reg")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def registry(database_url: str) -> Iterator[Registry]:
    registry = Registry.open(database_url)
    yield registry
    registry.close()

"""The schema comes from the migrations, once, whoever opens the database first."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from ratekeeper.registry import Registry, RegistryError, registry_url
from ratekeeper.registry._migrate import VERSION_TABLE, current_revision, head_revision
from ratekeeper.registry._tables import metadata


def test_the_tables_the_queries_use_are_what_the_migrations_make(database_url: str) -> None:
    registry = Registry.open(database_url)
    try:
        with registry.engine.connect() as connection:
            assert current_revision(connection) == head_revision() == "0002"
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, metadata) == []
            assert set(inspect(connection).get_table_names()) == {
                "keys", "audit", "registry_state", VERSION_TABLE,
                "usage_minute", "usage_hour", "usage_day", "usage_state",
            }  # fmt: skip
    finally:
        registry.close()


def test_replicas_opening_one_database_at_once_migrate_it_once(database_url: str) -> None:
    def open_and_count(_: int) -> int:
        registry = Registry.open(database_url)
        try:
            return registry.revision()
        finally:
            registry.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(open_and_count, range(6))) == [0] * 6
    registry = Registry.open(database_url)
    try:
        assert registry.revision() == 0  # the one state row, made once
    finally:
        registry.close()


def test_processes_opening_one_database_at_once_migrate_it_once(database_url: str) -> None:
    script = (
        "import sys; from ratekeeper.registry import Registry; "
        "r = Registry.open(sys.argv[1]); print(r.revision()); r.close()"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [
        subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", script, database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    answers = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, answers
    assert [out.strip() for out, _ in answers] == ["0"] * 4


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/keys", "postgresql+psycopg"),
        ("postgres://u@db/keys", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/keys", "postgresql+psycopg"),
        ("sqlite:///./ratekeeper.sqlite3", "sqlite"),
    ],
)
def test_postgresql_urls_are_run_by_psycopg_3(given: str, driver: str) -> None:
    assert registry_url(given).drivername == driver


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u@db/keys", "unsupported registry URL 'mysql://u@db/keys'"),
        ("not a url", "not a registry URL: 'not a url'"),
    ],
)
def test_other_urls_are_refused_by_name(given: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        registry_url(given)


def test_a_database_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "keys.sqlite3"
    with pytest.raises(RegistryError, match=r"cannot open the registry sqlite:///.*keys\.sqlite3"):
        Registry.open(f"sqlite:///{missing}")


def test_a_password_never_appears_in_an_error() -> None:
    with pytest.raises(RegistryError) as caught:
        Registry.open("postgresql://alice:s3cret@127.0.0.1:1/keys")  # nothing listens on 1
    assert "s3cret" not in str(caught.value)
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/keys" in str(caught.value)

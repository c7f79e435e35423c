"""Settings never show a password: not in their repr, not in the start-up lines."""

from __future__ import annotations

from ratekeeper import MemoryStore
from ratekeeper.server.run import endpoints
from ratekeeper.server.service import Service
from ratekeeper.server.settings import Settings, hide_password


def test_passwords_in_store_and_registry_urls_are_hidden_everywhere() -> None:
    settings = Settings.from_options(
        store="redis://:s3cret-redis@cache.internal:6379/0",
        registry="postgresql://rk:s3cret-db@db.internal/rk",
        admin_token_file=None,
        environ={"RATEKEEPER_ADMIN_TOKEN": "s3cret-admin"},
    )
    lines = endpoints(
        "http://127.0.0.1:8080", settings, Service(store=MemoryStore()), {"/v1/check"}
    )
    shown = repr(settings) + "\n".join(lines)
    assert "s3cret" not in shown
    assert "postgresql://rk:***@db.internal/rk" in shown
    assert "redis://:***@cache.internal:6379/0" in shown


def test_a_url_without_a_password_is_shown_as_it_is() -> None:
    for url in ("sqlite:///./ratekeeper.sqlite3", "redis://cache:6379/0", "memory://"):
        assert hide_password(url) == url

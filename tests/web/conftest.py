"""Fixtures of the middleware tests: a fake clock and a memory store on it.

Time moves by assignment (``clock.t += 60``), never by sleeping.
"""

from __future__ import annotations

import pytest
from webtools import T0, DjangoUrls

from ratekeeper import MemoryStore
from support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture(scope="session")
def django_settings() -> None:
    """Django configured once for the session: no project on disk, urls from DjangoUrls."""
    from django.conf import settings

    if not settings.configured:
        import django

        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=DjangoUrls,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()

"""Fixtures of the middleware tests: a fake clock and a memory store on it.

Time moves by assignment (``clock.t += 60``), never by sleeping.
"""

from __future__ import annotations

import pytest
from webtools import T0

from ratekeeper import MemoryStore
from support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)

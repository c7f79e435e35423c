"""Fixtures of the unit tests: a fake clock at T0 and a memory store on it."""

from __future__ import annotations

import pytest

from ratekeeper import MemoryStore
from support.clock import Clock

#: 20 days after the epoch: aligned to every window the unit tests use
T0 = 1_728_000.0


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)

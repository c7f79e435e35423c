"""The store matrix for the contract vectors.

``store_factory(clock)`` builds a fresh, empty store whose time is ``clock``
(the ``clock`` fixture: a :class:`FakeClock` standing at the vectors' t0).
Every store listed in ``STORES`` runs the whole of vectors.yaml. To add one,
write a factory and list it; a store that needs a server gets a mark, e.g.::

    def redis_store(clock: FakeClock) -> Store:
        ...  # flush the test database; make the scripts read clock.now_ms

    STORES = [
        pytest.param(memory_store, id="memory"),
        pytest.param(redis_store, id="redis", marks=pytest.mark.redis),
    ]
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import pytest

from ratekeeper.stores import MemoryStore, Store

#: t0 of the vectors: 2023-11-15T00:00:00Z in ms, a whole number of days
T0_MS = 1_700_006_400_000


class FakeClock:
    """Time under the test's control, in whole milliseconds since the epoch.

    Calling it gives epoch seconds as an exact ``Fraction``: a float cannot hold
    ``1_700_006_400.001`` exactly, and the stores turn it into integer
    nanoseconds (or ms, or µs) with ``round(clock() * unit)``.
    """

    def __init__(self, now_ms: int = T0_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> Fraction:
        return Fraction(self.now_ms, 1000)


def memory_store(clock: FakeClock) -> Store:
    return MemoryStore(clock=clock)  # type: ignore[arg-type]  # an exact Fraction, not a float


STORES = [
    pytest.param(memory_store, id="memory"),
]


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing at the vectors' t0."""
    return FakeClock()


@pytest.fixture(params=STORES)
def store_factory(request: pytest.FixtureRequest) -> Callable[[FakeClock], Store]:
    factory: Callable[[FakeClock], Store] = request.param
    return factory

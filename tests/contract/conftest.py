"""The store matrix for the contract vectors.

``store_factory(clock)`` builds a fresh, empty store whose time is ``clock``
(the ``clock`` fixture: a :class:`FakeClock` standing at the vectors' t0).
Every store listed in ``STORES`` runs the whole of vectors.yaml: the memory
store, a real standalone Redis and a real 3-master Redis Cluster (started by
the fixtures of tests/conftest.py). The Redis scripts read the fake clock
(``RedisStore(clock=...)``) instead of the server's TIME.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from fractions import Fraction

import pytest

from ratekeeper.stores import MemoryStore, RedisStore, Store

#: t0 of the vectors: 2023-11-15T00:00:00Z in ms, a whole number of days
T0_MS = 1_700_006_400_000


class FakeClock:
    """Time under the test's control, in milliseconds since the epoch.

    ``now_ms`` is whole milliseconds, or an exact ``Fraction`` of them (whole
    microseconds: the sliding log's vectors). Calling it gives epoch seconds as
    an exact ``Fraction``: a float cannot hold ``1_700_006_400.001`` exactly,
    and the stores turn it into integer nanoseconds (or ms, or µs) with
    ``round(clock() * unit)``.
    """

    def __init__(self, now_ms: int | Fraction = T0_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> Fraction:
        return Fraction(self.now_ms) / 1000


def memory_store(request: pytest.FixtureRequest, clock: FakeClock) -> Store:
    return MemoryStore(clock=clock)  # type: ignore[arg-type]  # an exact Fraction, not a float


def redis_store(request: pytest.FixtureRequest, clock: FakeClock) -> Store:
    """A real standalone Redis, flushed, its scripts reading the fake clock."""
    return RedisStore.from_url(request.getfixturevalue("redis_url"), clock=clock, timeout=2.0)  # type: ignore[arg-type]


def redis_cluster_store(request: pytest.FixtureRequest, clock: FakeClock) -> Store:
    """A real 3-master Redis Cluster, flushed, its scripts reading the fake clock."""
    url = request.getfixturevalue("redis_cluster_url")
    return RedisStore.from_url(url, clock=clock, timeout=2.0)  # type: ignore[arg-type]


STORES = [
    pytest.param(memory_store, id="memory"),
    pytest.param(redis_store, id="redis", marks=pytest.mark.redis),
    pytest.param(redis_cluster_store, id="redis-cluster", marks=pytest.mark.redis),
]


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing at the vectors' t0."""
    return FakeClock()


@pytest.fixture(params=STORES)
async def store_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[FakeClock], Store]]:
    """Builds the store under test on a clock (servers come from tests/conftest.py).

    Redis stores are closed after the test, their asyncio clients in the test's loop.
    """
    build: Callable[[pytest.FixtureRequest, FakeClock], Store] = request.param
    made: list[Store] = []

    def factory(clock: FakeClock) -> Store:
        store = build(request, clock)
        made.append(store)
        return store

    yield factory
    for store in made:
        if isinstance(store, RedisStore):
            store.close()
            await store.aclose()

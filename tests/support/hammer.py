"""Worker processes that hammer one key through a RedisStore (for exactness tests)."""

from __future__ import annotations

import threading

from ratekeeper import RateLimiter, RedisStore

__all__ = ["hammer"]


def hammer(url: str, key: str, rates: str, algorithm: str, threads: int, hits: int) -> int:
    """Hit ``key`` ``hits`` times from each of ``threads`` threads; the number admitted."""
    store = RedisStore.from_url(url, on_error="closed", timeout=5.0)
    limiter = RateLimiter(store, algorithm=algorithm)
    admitted = [0] * threads
    start = threading.Barrier(threads)

    def run(slot: int) -> None:
        start.wait()
        count = 0
        for _ in range(hits):
            if limiter.hit(key, rates).allowed:
                count += 1
        admitted[slot] = count

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()
    return sum(admitted)

"""Does matching cost grow with the number of exact-path routes? (It must not.)

Builds policies with 10, 1,000 and 10,000 exact routes (plus a few patterns
after them) and times ``Limiter.check`` on an exact path, on a patterned path
and on an unmatched one.

    python bench/bench_router.py
"""

from __future__ import annotations

import timeit

from ratekeeper import Limiter, MemoryStore
from ratekeeper.policy import policy_from_dict

PATTERNS = ["/api/v1/items/{id}", "/api/v1/files/*.pcap", "/api/**"]


def policy(exact_routes: int) -> Limiter:
    categories = [
        {"name": f"r{index}", "match": f"GET /api/v1/route{index}", "charge": ["api"]}
        for index in range(exact_routes)
    ]
    categories += [
        {"name": f"p{index}", "match": pattern, "charge": ["api"]}
        for index, pattern in enumerate(PATTERNS)
    ]
    data = {
        "version": 1,
        "limits": {"api": {"by": "ip", "rate": "1000000000/minute"}},
        "categories": categories,
    }
    return Limiter(policy_from_dict(data, name="bench"), store=MemoryStore())


def per_call_ns(limiter: Limiter, path: str, number: int = 20_000) -> float:
    def call() -> None:
        limiter.check(method="GET", path=path, client_ip="192.0.2.1")

    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e9


def main() -> None:
    rows = []
    for count in (10, 1_000, 10_000):
        limiter = policy(count)
        rows.append(
            (
                count,
                per_call_ns(limiter, f"/api/v1/route{count // 2}"),
                per_call_ns(limiter, "/api/v1/items/42"),
                per_call_ns(limiter, "/elsewhere"),
            )
        )
    print("| exact routes | exact path | pattern path | unmatched |")
    print("|---:|---:|---:|---:|")
    for count, exact, pattern, unmatched in rows:
        print(f"| {count:,} | {exact:,.0f} ns | {pattern:,.0f} ns | {unmatched:,.0f} ns |")


if __name__ == "__main__":
    main()

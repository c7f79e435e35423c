"""The most each algorithm admits in one window length, under an adversary.

A limit of N per W promises "about N per W". This script measures what each
algorithm actually lets through in the worst half-open span ``[s, s + W)``
when the caller times its requests to exploit it. ``sliding_window`` is the
one that needs this: its estimate assumes the previous window's requests were
spread evenly, so a burst just before a boundary is under-counted.

The adversary, searched over its parameters:

1. optionally pre-fills the window two before the target one with ``p`` units
   at a chosen phase (``p`` in 0, N/4, N/2, N);
2. starts at ``d`` before the target window's boundary (``d`` from 1 ns up to
   3/4 of a window) and hammers for two windows: one unit at a time, as many
   as pass at once, and after each denial it waits exactly the ``retry_after``
   it was given, so every unit is admitted at the earliest instant the
   algorithm allows (the first instant's admissions are the burst).

Every admission time is recorded (integer nanoseconds, the algorithms' pure
functions, no clock), and the most units in any span of one window length is
reported. The proven bounds are in docs/algorithms.md.

Run from the repository root::

    python bench/worst_case.py            # the table in docs/algorithms.md
    python bench/worst_case.py --quick    # fewer rates, a few seconds
"""

from __future__ import annotations

import argparse
from collections import deque
from itertools import product
from typing import Any

from ratekeeper.algorithms import ALGORITHMS, Algorithm
from ratekeeper.rates import Rate, parse_rates

EPOCH = 1_700_006_400 * 1_000_000_000  # 2023-11-15T00:00:00Z, whole days
RATES = ["1/second", "5/second", "10/second", "60/minute", "100/minute", "1000/hour", "10000/day"]
QUICK_RATES = ["5/second", "100/minute"]


class Caller:
    """One key driven through an algorithm's pure functions."""

    def __init__(self, algorithm: Algorithm, rate: Rate) -> None:
        self.algorithm = algorithm
        self.rate = rate
        self.state: Any = None
        self.admitted: list[int] = []

    def hit(self, now: int) -> int:
        """Try one unit at ``now``; 0 when admitted, else the retry_after in ns."""
        rate = self.rate
        allowed, _room, _reset, retry, next_state = self.algorithm.evaluate(
            self.state, now, 1, rate.limit, rate.window_ns, rate.capacity
        )
        if not allowed:
            return int(retry)
        if self.algorithm.in_place:
            self.state = self.algorithm.consume(self.state, now, 1)
        else:
            self.state = next_state
        self.admitted.append(now)
        return 0

    def burst(self, now: int, units: int) -> None:
        for _ in range(units):
            if self.hit(now):
                return

    def hammer(self, start: int, until: int) -> None:
        now = start
        while now < until:
            now += self.hit(now)


def most_in_one_window(times: list[int], window: int) -> tuple[int, int]:
    """The most admissions in any span ``[s, s + window)``, and that span's start."""
    best, best_start = 0, times[0] if times else 0
    inside: deque[int] = deque()
    for t in times:  # admission times never decrease
        inside.append(t)
        while inside[0] <= t - window:
            inside.popleft()
        if len(inside) > best:
            best, best_start = len(inside), inside[0]
    return best, best_start


def attack(
    algorithm: Algorithm, rate: Rate, prefill: int, prefill_phase: float, lead: int
) -> tuple[int, int]:
    """Run one adversary; the most admitted in a window span, and when it started."""
    window = rate.window_ns
    boundary = EPOCH + 2 * window  # the target window starts here
    caller = Caller(algorithm, rate)
    if prefill:
        caller.burst(boundary - 2 * window + int(prefill_phase * window), prefill)
    caller.hammer(boundary - lead, boundary + 2 * window)
    best, start = most_in_one_window(caller.admitted, window)
    return best, start - boundary


def search(algorithm: Algorithm, rate: Rate) -> tuple[int, str]:
    """The worst case over the adversary's parameters, and how it was reached."""
    n, window = rate.limit, rate.window_ns
    prefills = sorted({0, n // 4, n // 2, n})
    phases = [0.0, 0.5, 0.99]
    leads = sorted({1, window // 1000, window // 100, window // 10, window // 4, window // 2})
    leads += [3 * window // 4]
    best, how = -1, ""
    for prefill, phase, lead in product(prefills, phases, leads):
        if prefill == 0 and phase:
            continue
        admitted, start = attack(algorithm, rate, prefill, phase, lead)
        if admitted > best:
            best = admitted
            sign = "+" if start >= 0 else "-"
            how = f"hammer from boundary - {describe(lead)}"
            if prefill:
                how = f"prefill {prefill} at {phase:g} W, then {how}"
            how += f"; span from boundary {sign} {describe(abs(start))}"
    return best, how


def proven_bound(name: str, rate: Rate) -> int:
    """The bound docs/algorithms.md proves for one window span."""
    n = rate.limit
    return {
        "sliding_window": 2 * n - 1,
        "fixed_window": 2 * n,
        "sliding_log": n,
        "token_bucket": rate.capacity + n - 1,
    }[name]


def describe(ns: int) -> str:
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns >= size:
            return f"{ns / size:g} {unit}"
    return f"{ns} ns"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="two rates only")
    parser.add_argument(
        "--algorithm",
        choices=sorted(ALGORITHMS),
        action="append",
        help="only these algorithms (repeatable); default: all four",
    )
    args = parser.parse_args(argv)
    names = args.algorithm or ["sliding_window", "fixed_window", "sliding_log", "token_bucket"]
    rates = QUICK_RATES if args.quick else RATES

    print("# Most admitted in any span of one window length, adversarial timing\n")
    print("| algorithm | rate | most in one window span | x N | proven bound | worst adversary |")
    print("|---|---|---:|---:|---:|---|")
    for name in names:
        for text in rates:
            (rate,) = parse_rates(text)
            best, how = search(ALGORITHMS[name], rate)
            bound = proven_bound(name, rate)
            print(f"| {name} | {text} | {best} | {best / rate.limit:.3f} | {bound} | {how} |")


if __name__ == "__main__":
    main()

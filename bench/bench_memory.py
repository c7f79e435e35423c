"""The in-process engine against its peers, in one run on one machine.

Compares ``ratekeeper.RateLimiter.hit`` on a ``MemoryStore`` with ``limits`` 5.x
(``MemoryStorage`` + its three strategies) and ``pyrate-limiter`` 4.x (one
in-memory bucket per key, behind a ``Limiter``), algorithm by algorithm:

=================  ===================================  ====================================
ratekeeper         limits 5.x                           pyrate-limiter 4.x
=================  ===================================  ====================================
fixed_window       FixedWindowRateLimiter               InMemoryBucket(algorithm=FixedWindow)
sliding_log        MovingWindowRateLimiter              InMemoryBucket (SlidingWindowLog)
sliding_window     SlidingWindowCounterRateLimiter      (none)
token_bucket       (none)                               StateBucket(algorithm=TokenBucket)
=================  ===================================  ====================================

Sections (each prints a Markdown table):

1. throughput and p50/p99 latency, scenario A (1,000 keys round-robin, all
   allowed) and scenario B (one hot key, always denied);
2. sliding_log per-decision cost at 100,000/day against 100/minute;
3. bytes per tracked key at 100,000 keys (tracemalloc);
4. the policy-driven ``Limiter`` (runs once ``ratekeeper.Limiter`` exists).

Method: every subject runs the same loop, compiled from one template (as
``timeit`` does), so loop overhead is identical. Each measurement warms up,
calibrates a call count that takes about ``--seconds``, then times ``--repeats``
runs with ``time.perf_counter_ns``; throughput is the best run (noise only ever
adds time), the median is printed beside it. Within a scenario the repeats of
all subjects are interleaved, round by round, so that noise from the machine
falls on every subject alike. Latency comes from a separate pass per round
that times every call on its own; the p50/p99 reported are medians over the
rounds, net of the timer's own cost.
The garbage collector stays on: the allocations a library makes are part of
its cost in a long-running server.

Run from the repository root::

    python bench/bench_memory.py            # full run, a few minutes
    python bench/bench_memory.py --quick    # smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess  # only to name the git revision measured
import sys
import time
import tracemalloc
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import cycle, islice
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import limits
import limits.storage.memory as limits_memory
import pyrate_limiter
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from pyrate_limiter import (
    AbstractBucket,
    AbstractClock,
    BucketFactory,
    Duration,
    FixedWindow,
    InMemoryBucket,
    Limiter,
    MonotonicClock,
    RateItem,
    StateBucket,
    TokenBucket,
)
from pyrate_limiter import Rate as PyrateRate

import ratekeeper
from ratekeeper import MemoryStore, RateLimiter

ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = ("fixed_window", "sliding_log", "sliding_window", "token_bucket")
TARGET_RATIO = 3.0  # ratekeeper's throughput over the fastest peer's, per algorithm
TARGET_SCALING = 2.0  # sliding_log cost at 100,000/day over its cost at 100/minute
TARGET_BYTES_PER_KEY = 300
TARGET_POLICY_RATE = 100_000  # policy-driven Limiter.check decisions per second
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


# --------------------------------------------------------------------------- #
# What is measured: a subject builds an instance for one rate.                 #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RateSpec:
    """A rate every library can express: ``limit`` per one ``unit``."""

    limit: int
    unit: str

    @property
    def text(self) -> str:  # ratekeeper and limits both read "100/minute"
        return f"{self.limit}/{self.unit}"

    @property
    def seconds(self) -> int:
        return _UNIT_SECONDS[self.unit]


class SimClock:
    """Simulated time for the sliding log's steady state; moves only on ``advance``."""

    def __init__(self, step: float) -> None:
        self.now = time.time()
        self.step = step

    def advance(self) -> None:
        self.now += self.step

    def seconds(self) -> float:
        return self.now

    def time(self) -> float:  # stands in for the ``time`` module inside limits
        return self.now


@dataclass
class Instance:
    """One configured limiter: ``call`` is a statement using ``key``.

    ``names`` are what the statement refers to; ``decide`` makes one decision
    (for sanity checks, outside any timing); ``tracked`` counts the keys the
    limiter holds state for; ``close`` releases threads.
    """

    call: str
    names: dict[str, Any]
    decide: Callable[[str], bool]
    tracked: Callable[[], int]
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Subject:
    library: str
    label: str
    algorithm: str  # the ratekeeper algorithm it is compared with
    build: Callable[[RateSpec, SimClock | None], Instance]

    @property
    def is_ratekeeper(self) -> bool:
        return self.library == "ratekeeper"


def _ratekeeper(algorithm: str) -> Callable[[RateSpec, SimClock | None], Instance]:
    def build(rate: RateSpec, clock: SimClock | None) -> Instance:
        store = MemoryStore() if clock is None else MemoryStore(clock=clock.seconds)
        limiter = RateLimiter(store, algorithm=algorithm)
        rates = rate.text
        return Instance(
            "hit(key, rates)",
            {"hit": limiter.hit, "rates": rates},
            lambda key: limiter.hit(key, rates).allowed,
            lambda: store.stats().keys,
        )

    return build


def _limits_clock(clock: SimClock) -> Callable[[], None]:
    """Give limits' MemoryStorage simulated time (it reads ``time.time()`` directly).

    Returns the function that puts the real clock back.
    """
    real = limits_memory.time
    limits_memory.time = SimpleNamespace(time=clock.time)  # type: ignore[assignment]

    def unpatch() -> None:
        limits_memory.time = real

    return unpatch


def _limits(strategy: type) -> Callable[[RateSpec, SimClock | None], Instance]:
    def build(rate: RateSpec, clock: SimClock | None) -> Instance:
        storage = MemoryStorage()
        limiter = strategy(storage)
        item = limits.parse(rate.text)

        def close() -> None:
            # stop the expiry timer before clearing: limits' timer iterates the
            # dictionaries that reset() clears (a KeyError in its thread otherwise)
            storage.timer.cancel()
            storage.timer.join()
            storage.reset()

        return Instance(
            "hit(item, key)",
            {"hit": limiter.hit, "item": item},
            lambda key: limiter.hit(item, key),
            lambda: len(storage.storage) + len(storage.events),
            close,
        )

    return build


class _PerKeyFactory(BucketFactory):
    """One bucket per key, made on first use: pyrate-limiter's documented pattern.

    ``create`` builds the bucket and registers it with the background leaker.
    """

    def __init__(self, clock: AbstractClock, make: Callable[[], AbstractBucket]) -> None:
        self.clock = clock
        self.make = make
        self.buckets: dict[str, AbstractBucket] = {}

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, self.clock.now(), weight=weight)

    def get(self, item: RateItem) -> AbstractBucket:
        bucket = self.buckets.get(item.name)
        if bucket is None:
            bucket = self.buckets[item.name] = self.make()
            bucket._clock = self.clock  # README: buckets delegate to ``_clock``
            self.schedule_leak(bucket)
        return bucket


class _SimPyrateClock(AbstractClock):
    def __init__(self, clock: SimClock) -> None:
        self.sim = clock

    def now(self) -> int:
        return int(self.sim.now * 1000)


def _pyrate(kind: str) -> Callable[[RateSpec, SimClock | None], Instance]:
    def build(rate: RateSpec, clock: SimClock | None) -> Instance:
        rates = [PyrateRate(rate.limit, Duration[rate.unit.upper()])]
        if kind == "fixed_window":
            make: Callable[[], AbstractBucket] = lambda: InMemoryBucket(rates, FixedWindow())  # noqa: E731
        elif kind == "sliding_log":
            make = lambda: InMemoryBucket(rates)  # noqa: E731
        else:
            make = lambda: StateBucket(rates, algorithm=TokenBucket())  # noqa: E731
        py_clock = MonotonicClock() if clock is None else _SimPyrateClock(clock)
        factory = _PerKeyFactory(py_clock, make)
        limiter = Limiter(factory)
        return Instance(
            "try_acquire(key, blocking=False)",
            {"try_acquire": limiter.try_acquire},
            lambda key: bool(limiter.try_acquire(key, blocking=False)),
            lambda: len(factory.buckets),
            limiter.close,
        )

    return build


SUBJECTS = [
    Subject("ratekeeper", "RateLimiter.hit", "fixed_window", _ratekeeper("fixed_window")),
    Subject("limits", "FixedWindowRateLimiter", "fixed_window", _limits(FixedWindowRateLimiter)),
    Subject(
        "pyrate-limiter", "InMemoryBucket+FixedWindow", "fixed_window", _pyrate("fixed_window")
    ),
    Subject("ratekeeper", "RateLimiter.hit", "sliding_log", _ratekeeper("sliding_log")),
    Subject("limits", "MovingWindowRateLimiter", "sliding_log", _limits(MovingWindowRateLimiter)),
    Subject("pyrate-limiter", "InMemoryBucket (log)", "sliding_log", _pyrate("sliding_log")),
    Subject("ratekeeper", "RateLimiter.hit", "sliding_window", _ratekeeper("sliding_window")),
    Subject(
        "limits",
        "SlidingWindowCounterRateLimiter",
        "sliding_window",
        _limits(SlidingWindowCounterRateLimiter),
    ),
    Subject("ratekeeper", "RateLimiter.hit", "token_bucket", _ratekeeper("token_bucket")),
    Subject("pyrate-limiter", "StateBucket+TokenBucket", "token_bucket", _pyrate("token_bucket")),
]


# --------------------------------------------------------------------------- #
# Timing machinery.                                                            #
# --------------------------------------------------------------------------- #

_LOOPS = """
def run(keys{params}):
    for key in keys:
        {call}

def timed(keys{params}, _clock=_clock):
    samples = []
    append = samples.append
    for key in keys:
        start = _clock()
        {call}
        append(_clock() - start)
    return samples
"""


def compile_loops(call: str, names: dict[str, Any]) -> tuple[Callable[..., Any], ...]:
    """``run(keys)`` and ``timed(keys) -> [ns]`` with ``call`` inlined, as timeit does.

    The names become default arguments, so the loop reads them as locals.
    """
    namespace: dict[str, Any] = {"_clock": time.perf_counter_ns, **names}
    params = "".join(f", {name}={name}" for name in names)
    source = _LOOPS.format(params=params, call=call)
    exec(compile(source, "<bench loop>", "exec"), namespace)  # noqa: S102  # fixed template, timeit's technique
    return namespace["run"], namespace["timed"]


@dataclass
class Measurement:
    best: float  # decisions per second, best repeat
    median: float  # decisions per second, median repeat
    p50_ns: float
    p99_ns: float
    calls: int  # calls per repeat
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    seconds: float  # target duration of one timed repeat
    repeats: int
    latency_samples: int
    memory_keys: int
    quick: bool


_TIMER_OVERHEAD_NS: float | None = None


def timer_overhead_ns() -> float:
    """The median cost of timing an empty statement, taken off latency percentiles."""
    global _TIMER_OVERHEAD_NS
    if _TIMER_OVERHEAD_NS is None:
        _, timed = compile_loops("pass", {})
        _TIMER_OVERHEAD_NS = min(statistics.median(timed([None] * 50_000)) for _ in range(5))
    return _TIMER_OVERHEAD_NS


def percentile(sorted_samples: list[int], fraction: float) -> float:
    index = min(len(sorted_samples) - 1, int(fraction * len(sorted_samples)))
    return float(sorted_samples[index])


@dataclass
class Case:
    """Something to time: ``build`` makes a fresh instance already in the regime
    to measure (warmed, a hot key used up, a log filled); ``check`` says whether
    an instance is still in that regime afterwards (``None`` if it is)."""

    label: str
    build: Callable[[], Instance]
    keys: list[Any]
    check: Callable[[Instance], str | None] = lambda instance: None


def _sequence(keys: list[Any], n: int) -> list[Any]:
    """``n`` calls' keys: a round-robin over ``keys``."""
    return list(islice(cycle(keys), n))


def _calibrate(run: Callable[[list[Any]], None], keys: list[Any], seconds: float) -> int:
    """How many calls take about ``seconds``: grow until a run takes a tenth of it."""
    n = 1_000
    while True:
        seq = _sequence(keys, n)
        start = time.perf_counter_ns()
        run(seq)
        elapsed = time.perf_counter_ns() - start
        if elapsed >= seconds * 1e8 or n >= 50_000_000:
            break
        n *= 4 if elapsed < seconds * 1e7 else 2
    return max(1_000, int(n * seconds * 1e9 / max(elapsed, 1)))


def measure_cases(cases: list[Case], settings: Settings) -> list[Measurement]:
    """Time every case ``settings.repeats`` times, interleaved, and sample latencies.

    Each repeat builds a fresh instance, warms it up and times one run, so every
    repeat starts from the same state (a log does not grow from one repeat to
    the next) and only one library's objects are alive at a time (no library's
    garbage is collected on another's clock). Rounds go through all cases in a
    rotating order: noise from the machine falls on every case alike. Each
    round then times calls one by one; the latency percentiles reported are the
    median over rounds of each round's percentile.
    """
    calls: list[int | None] = [None] * len(cases)
    rates: list[list[float]] = [[] for _ in cases]
    p50s: list[list[float]] = [[] for _ in cases]
    p99s: list[list[float]] = [[] for _ in cases]
    per_round = max(1_000, settings.latency_samples // settings.repeats)
    overhead = timer_overhead_ns()
    for round_ in range(settings.repeats):
        shift = round_ % len(cases)
        for index in [*range(shift, len(cases)), *range(shift)]:
            case = cases[index]
            instance = case.build()
            try:
                run, timed = compile_loops(instance.call, instance.names)
                run(_sequence(case.keys, max(2 * len(case.keys), 2_000)))  # warm-up
                n = calls[index]
                if n is None:
                    n = calls[index] = _calibrate(run, case.keys, settings.seconds)
                seq = _sequence(case.keys, n)
                gc.collect()
                start = time.perf_counter_ns()
                run(seq)
                rates[index].append(n * 1e9 / (time.perf_counter_ns() - start))
                del seq
                samples = sorted(timed(_sequence(case.keys, per_round)))
                p50s[index].append(percentile(samples, 0.50) - overhead)
                p99s[index].append(percentile(samples, 0.99) - overhead)
                problem = case.check(instance)
                if problem is not None:
                    sys.exit(f"{case.label}: {problem}")
            finally:
                instance.close()
                del instance
                gc.collect()
    return [
        Measurement(
            best=max(r),
            median=statistics.median(r),
            p50_ns=max(0.0, statistics.median(p50)),
            p99_ns=max(0.0, statistics.median(p99)),
            calls=n or 0,
        )
        for r, p50, p99, n in zip(rates, p50s, p99s, calls, strict=True)
    ]


# --------------------------------------------------------------------------- #
# Output.                                                                      #
# --------------------------------------------------------------------------- #


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown pipe table, padded so it also reads well in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def rate_text(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M"
    return f"{per_second / 1e3:.0f}k"


def ns_text(ns: float) -> str:
    return f"{ns / 1000:.2f}" if ns < 10_000 else f"{ns / 1000:.0f}"


def heading(text: str) -> None:
    print(f"\n## {text}\n", flush=True)


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


# --------------------------------------------------------------------------- #
# 1. Throughput and latency, scenarios A and B.                                #
# --------------------------------------------------------------------------- #

SCENARIOS = {
    "A": ("1,000 keys round-robin, all allowed", RateSpec(1_000_000, "minute")),
    "B": ("one hot key, always denied", RateSpec(10, "day")),
}
#: a log holds at most 100,000 units (docs/algorithms.md, "Bounds"): scenario A's
#: sliding_log rows, every library's, run at 100,000/minute, still all allowed
LOG_MOST = 100_000


def scenario_rate(name: str, algorithm: str) -> RateSpec:
    """Scenario ``name``'s rate for ``algorithm``: the sliding log's within its bound."""
    rate = SCENARIOS[name][1]
    if algorithm == "sliding_log" and rate.limit > LOG_MOST:
        return RateSpec(LOG_MOST, rate.unit)
    return rate


def scenario_rate_text(name: str) -> str:
    """The rates of scenario ``name`` as a table heading says them."""
    rate = SCENARIOS[name][1]
    log = scenario_rate(name, "sliding_log")
    return rate.text if log == rate else f"{rate.text}; sliding_log {log.text}"


def _scenario_case(subject: Subject, name: str) -> Case:
    rate = scenario_rate(name, subject.algorithm)
    if name == "A":
        keys = [f"user:{i}" for i in range(1_000)]
    else:
        keys = ["hot"]

    def build() -> Instance:
        instance = subject.build(rate, None)
        if name == "B":
            for _ in range(rate.limit + 1):  # use up the hot key's quota
                instance.decide("hot")
        return instance

    def check(instance: Instance) -> str | None:
        for key in (keys[0], keys[-1]):
            if instance.decide(key) is not (name == "A"):
                return f"scenario {name} left its regime"
        return None

    return Case(f"{subject.library} {subject.label} ({subject.algorithm})", build, keys, check)


def run_scenario(name: str, settings: Settings) -> list[tuple[Subject, Measurement]]:
    print(f"  scenario {name}: {len(SUBJECTS)} subjects x {settings.repeats} rounds", flush=True)
    measurements = measure_cases([_scenario_case(s, name) for s in SUBJECTS], settings)
    return list(zip(SUBJECTS, measurements, strict=True))


def print_throughput(name: str, results: list[tuple[Subject, Measurement]]) -> list[str]:
    """Print scenario ``name``'s table; return the target lines for the summary."""
    description = SCENARIOS[name][0]
    heading(f"Scenario {name}: {description} (rate {scenario_rate_text(name)})")
    rows = []
    verdicts = []
    for algorithm in ALGORITHMS:
        group = [(s, m) for s, m in results if s.algorithm == algorithm]
        ours = next(m for s, m in group if s.is_ratekeeper)
        peers = [m.best for s, m in group if not s.is_ratekeeper]
        fastest = max(peers) if peers else None
        for subject, m in group:
            if subject.is_ratekeeper:
                ratio = "no peer" if fastest is None else f"{m.best / fastest:.2f}x fastest peer"
            else:
                ratio = f"{m.best / ours.best:.2f}x ratekeeper"
            rows.append(
                [
                    algorithm,
                    subject.library,
                    subject.label,
                    rate_text(m.best),
                    rate_text(m.median),
                    ns_text(m.p50_ns),
                    ns_text(m.p99_ns),
                    ratio,
                ]
            )
        if fastest is not None:
            ok = ours.best >= TARGET_RATIO * fastest
            verdicts.append(
                f"scenario {name} {algorithm}: {ours.best / fastest:.2f}x the fastest peer "
                f"(target >= {TARGET_RATIO:g}x): {verdict(ok)}"
            )
        else:
            verdicts.append(f"scenario {name} {algorithm}: no peer to compare with")
    print(
        table(
            [
                "algorithm",
                "library",
                "what",
                "decisions/s (best)",
                "(median)",
                "p50 us",
                "p99 us",
                "ratio",
            ],
            rows,
        )
    )
    return verdicts


# --------------------------------------------------------------------------- #
# 2. sliding_log: 100,000/day against 100/minute.                              #
# --------------------------------------------------------------------------- #

LOG_RATES = (RateSpec(100, "minute"), RateSpec(100_000, "day"))
LOG_SUBJECTS = [s for s in SUBJECTS if s.algorithm == "sliding_log"]


def _log_cases(subject: Subject, rate: RateSpec) -> tuple[Case, Case]:
    """The steady and full-log cases of one library at one rate."""
    label = f"{subject.library} sliding_log {rate.text}"

    def build_steady() -> Instance:
        clock = SimClock(1.001 * rate.seconds / rate.limit)
        unpatch = _limits_clock(clock)
        instance = subject.build(rate, clock)
        for _ in range(rate.limit + rate.limit // 5):  # fill to the steady state
            clock.advance()
            instance.decide("k")

        def decide(key: str) -> bool:
            clock.advance()
            return instance.decide(key)

        def close() -> None:
            instance.close()
            unpatch()

        return Instance(
            f"advance(); {instance.call}",
            {**instance.names, "advance": clock.advance},
            decide,
            instance.tracked,
            close,
        )

    def build_full() -> Instance:
        instance = subject.build(rate, None)
        for _ in range(rate.limit):
            instance.decide("k")
        return instance

    def steady_check(instance: Instance) -> str | None:
        return None if instance.decide("k") else "the steady state denied a request"

    def full_check(instance: Instance) -> str | None:
        return "the full log admitted a request" if instance.decide("k") else None

    return (
        Case(f"{label} steady", build_steady, ["k"], steady_check),
        Case(f"{label} full", build_full, ["k"], full_check),
    )


def run_log_scaling(settings: Settings) -> tuple[list[list[str]], list[str]]:
    """Two regimes per rate, one key each.

    steady: simulated time advances by 1.001 x (window / limit) per decision,
    so the log holds ~limit entries and every decision expires the oldest
    entry and appends one; all allowed. This is the regime where a log's
    length could show in its cost.
    full: real time; the log is filled to the limit, then every decision is
    denied.
    """
    pairs = [(subject, rate) for subject in LOG_SUBJECTS for rate in LOG_RATES]
    cases = [case for subject, rate in pairs for case in _log_cases(subject, rate)]
    print(f"  sliding_log: {len(cases)} cases x {settings.repeats} rounds", flush=True)
    measurements = measure_cases(cases, settings)
    rows = []
    costs: dict[tuple[str, str], float] = {}
    for index, (subject, rate) in enumerate(pairs):
        steady, full = measurements[2 * index], measurements[2 * index + 1]
        costs[(subject.library, f"steady {rate.text}")] = 1e9 / steady.best
        costs[(subject.library, f"full {rate.text}")] = 1e9 / full.best
        rows.append(
            [
                subject.library,
                subject.label,
                rate.text,
                rate_text(steady.best),
                ns_text(1e9 / steady.best),
                rate_text(full.best),
                ns_text(1e9 / full.best),
            ]
        )
    summary = []
    small, large = (r.text for r in LOG_RATES)
    ratio_rows = []
    for subject in LOG_SUBJECTS:
        lib = subject.library
        steady_ratio = costs[(lib, f"steady {large}")] / costs[(lib, f"steady {small}")]
        full_ratio = costs[(lib, f"full {large}")] / costs[(lib, f"full {small}")]
        ratio_rows.append([lib, f"{steady_ratio:.2f}x", f"{full_ratio:.2f}x"])
        if subject.is_ratekeeper:
            worst = max(steady_ratio, full_ratio)
            summary.append(
                f"sliding_log cost at {large} / at {small}: {worst:.2f}x "
                f"(target <= {TARGET_SCALING:g}x): {verdict(worst <= TARGET_SCALING)}"
            )
    heading(f"sliding_log: per-decision cost at {large} against {small} (one key)")
    print(
        table(
            [
                "library",
                "what",
                "rate",
                "steady decisions/s",
                "steady us/decision",
                "full-log decisions/s",
                "full-log us/decision",
            ],
            rows,
        )
    )
    print()
    print(
        "steady: simulated clock, log at ~limit entries, each decision expires one and "
        "appends one (the clock advance is included, same cost for all); "
        "full: log at its limit, every decision denied (real clock)."
    )
    print()
    print(
        table(
            ["library", f"steady cost {large} / {small}", f"full-log cost {large} / {small}"],
            ratio_rows,
        )
    )
    return rows, summary


# --------------------------------------------------------------------------- #
# 3. Memory per tracked key.                                                   #
# --------------------------------------------------------------------------- #


MEMORY_RATE = RateSpec(100, "day")  # a day: no state expires while it is measured


def bytes_per_key(subject: Subject, count: int) -> tuple[float, int]:
    """tracemalloc's traced-memory delta for ``count`` fresh keys, one hit each.

    The key strings are made before tracing starts (callers own them); whatever
    a library builds per key (its own key strings, locks, buckets) is counted.
    Returns bytes per key and the number of keys the limiter says it tracks.
    """
    keys = [f"user:{i:06d}" for i in range(count)]
    rate = MEMORY_RATE
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        instance = subject.build(rate, None)
        decide = instance.decide
        for key in keys:
            decide(key)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    tracked = instance.tracked()
    instance.close()
    del instance
    gc.collect()
    return (after - before) / count, tracked


def run_memory(settings: Settings) -> tuple[list[list[str]], list[str]]:
    count = settings.memory_keys
    rows = []
    summary = []
    for subject in SUBJECTS:
        per_key, tracked = bytes_per_key(subject, count)
        rows.append(
            [subject.algorithm, subject.library, subject.label, f"{tracked:,}", f"{per_key:.0f}"]
        )
        if subject.is_ratekeeper:
            ok = per_key < TARGET_BYTES_PER_KEY
            summary.append(
                f"memory {subject.algorithm}: {per_key:.0f} bytes/key "
                f"(target < {TARGET_BYTES_PER_KEY}): {verdict(ok)}"
            )
        print(f"  memory {subject.algorithm:<15} {subject.library:<15} done", flush=True)
    heading(f"Memory: bytes per tracked key at {count:,} keys (tracemalloc, one hit per key)")
    print(table(["algorithm", "library", "what", "keys tracked", "bytes/key"], rows))
    print()
    print(
        "Measured with tracemalloc: Python heap growth from building the limiter and "
        f"making one decision (rate {MEMORY_RATE.text}) for each of the keys, after "
        "gc.collect(); the key strings themselves are made before tracing starts. "
        "'keys tracked' is what the limiter reports holding state for afterwards."
    )
    return rows, summary


# --------------------------------------------------------------------------- #
# 4. The policy-driven Limiter (match + 2 limits).                             #
# --------------------------------------------------------------------------- #
# HOOK: this section runs once `ratekeeper.Limiter` and examples/scanner.yaml
# exist. The pinned API:
#
#     from ratekeeper import Limiter, load_policy, MemoryStore
#     limiter = Limiter(load_policy("examples/scanner.yaml"), store=MemoryStore())
#     d = limiter.check(method="POST", path="/api/scans",
#                       headers={"X-API-Key": "demo-free"},
#                       client_ip="203.0.113.7", cost=1)
#
# Target: 100,000 decisions/s for a request that matches one endpoint category
# and is charged against two limits.

POLICY_FILE = ROOT / "examples" / "scanner.yaml"


def run_policy_limiter(settings: Settings) -> list[str]:
    heading("Policy-driven Limiter.check (match + 2 limits)")
    missing = []
    if not hasattr(ratekeeper, "Limiter") or not hasattr(ratekeeper, "load_policy"):
        missing.append("ratekeeper.Limiter / ratekeeper.load_policy are not importable yet")
    if not POLICY_FILE.exists():
        missing.append(f"{POLICY_FILE.relative_to(ROOT)} does not exist yet")
    if missing:
        print("skipped: " + "; ".join(missing) + ".")
        return ["policy Limiter.check: skipped (" + "; ".join(missing) + ")"]

    policy = ratekeeper.load_policy(str(POLICY_FILE))
    ips = [f"198.51.{i // 250}.{i % 250}" for i in range(100_000)]
    variants = [
        # (label, call, keys): ``key`` is the client IP where the call uses it
        (
            "pinned call: demo-free key, POST /api/scans",
            "check(method='POST', path='/api/scans', headers=headers, "
            "client_ip='203.0.113.7', cost=1)",
            [None],
        ),
        (
            "anonymous, 100,000 client IPs round-robin, POST /api/scans",
            "check(method='POST', path='/api/scans', headers=no_headers, client_ip=key, cost=1)",
            ips,
        ),
    ]
    answers: dict[str, str] = {}

    def case(label: str, call: str, keys: list[Any]) -> Case:
        def build() -> Instance:
            limiter = ratekeeper.Limiter(policy, store=ratekeeper.MemoryStore())
            names = {"check": limiter.check, "headers": {"X-API-Key": "demo-free"}}
            names["no_headers"] = {}

            def decide(key: Any) -> bool:
                d = eval(call, {}, {**names, "key": key})  # noqa: S307  # our own fixed string
                answers[label] = f"{'allowed' if d.allowed else 'denied'} ({d.status_code})"
                return bool(d.allowed)

            return Instance(call, names, decide, lambda: 0)

        def check(instance: Instance) -> str | None:
            instance.decide(keys[-1])  # records the answer the run ended on
            return None

        return Case(f"policy Limiter.check {label}", build, keys, check)

    try:
        measurements = measure_cases([case(*variant) for variant in variants], settings)
    except Exception as error:  # a hook on code in progress: report, go on
        print(f"failed: {error!r}")
        return [f"policy Limiter.check: FAILED ({error!r})"]
    rows = [
        [
            label,
            rate_text(m.best),
            rate_text(m.median),
            ns_text(m.p50_ns),
            ns_text(m.p99_ns),
            answers.get(label, "?"),
        ]
        for (label, _call, _keys), m in zip(variants, measurements, strict=True)
    ]
    print(
        table(
            [
                "Limiter.check",
                "decisions/s (best)",
                "(median)",
                "p50 us",
                "p99 us",
                "answer at end",
            ],
            rows,
        )
    )
    print()
    print(
        f"policy: {POLICY_FILE.relative_to(ROOT)}; POST /api/scans matches the 'scans' "
        "category and is charged against two limits (api and scans). The demo-free "
        "key's 20 scans/hour are used up during warm-up, so the pinned call measures "
        "the denied answer; the anonymous row spreads calls over 100,000 client IPs "
        "(5 scans/hour each) to measure the allowed answer."
    )
    best = measurements[0].best
    return [
        f"policy Limiter.check (pinned call): {rate_text(best)}/s "
        f"(target >= {rate_text(TARGET_POLICY_RATE)}/s): {verdict(best >= TARGET_POLICY_RATE)}",
        f"policy Limiter.check (anonymous, allowed): {rate_text(measurements[1].best)}/s "
        f"(target >= {rate_text(TARGET_POLICY_RATE)}/s): "
        f"{verdict(measurements[1].best >= TARGET_POLICY_RATE)}",
    ]


# --------------------------------------------------------------------------- #
# Main.                                                                        #
# --------------------------------------------------------------------------- #


def revision() -> str:
    """The commit the benchmarked source is at, marked when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607  # git from PATH, fixed args
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"{head} (src/ has uncommitted changes)" if dirty else head


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                platform.processor() or "unknown",
            )
    except OSError:
        model = platform.processor() or "unknown"
    return (
        f"ratekeeper at {revision()}; "
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {model}, nproc={os.cpu_count()}; "
        f"ratekeeper {ratekeeper.__version__}, limits {limits.__version__}, "
        f"pyrate-limiter {pyrate_limiter.__version__}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--seconds", type=float, help="duration of one timed repeat")
    parser.add_argument("--repeats", type=int, help="timed repeats per measurement")
    parser.add_argument(
        "--only",
        choices=["throughput", "log", "memory", "policy"],
        action="append",
        help="run only these sections (repeatable)",
    )
    parser.add_argument("--pin", type=int, metavar="CPU", help="pin the process to one CPU")
    args = parser.parse_args(argv)
    settings = Settings(
        seconds=args.seconds or (0.05 if args.quick else 0.4),
        repeats=args.repeats or (2 if args.quick else 5),
        latency_samples=5_000 if args.quick else 100_000,
        memory_keys=10_000 if args.quick else 100_000,
        quick=args.quick,
    )
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    sections = set(args.only or ["throughput", "log", "memory", "policy"])

    print("# ratekeeper in-process engine vs limits and pyrate-limiter\n")
    print(f"machine: {machine()}")
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"method: best of {settings.repeats} repeats of ~{settings.seconds:g}s each "
        f"(median beside it), rounds interleaved across subjects; latency: "
        f"{settings.latency_samples:,} individually timed calls spread over the rounds, "
        f"p50/p99 = median over rounds, net of {timer_overhead_ns():.0f} ns timer overhead; "
        "GC on"
    )
    if settings.quick:
        print("QUICK RUN: numbers are indicative only")

    summary: list[str] = []
    if "throughput" in sections:
        for name in SCENARIOS:
            results = run_scenario(name, settings)
            summary += print_throughput(name, results)
    if "log" in sections:
        summary += run_log_scaling(settings)[1]
    if "memory" in sections:
        summary += run_memory(settings)[1]
    if "policy" in sections:
        summary += run_policy_limiter(settings)

    heading("Targets")
    for line in summary:
        print(f"- {line}")


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()

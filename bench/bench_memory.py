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

Method: the harness's (``bench/harness``): every subject runs the same loop,
compiled from one template (as ``timeit`` does), so loop overhead is identical.
Each round builds a fresh instance, warms it up and times one pass of a call
count calibrated (first round) to take about ``--seconds``, with
``time.perf_counter_ns``; throughput is the best of ``--rounds`` rounds (noise
only ever adds time), the median is printed beside it. Within a scenario the
rounds of all subjects are interleaved, in rotating order, so that noise from
the machine falls on every subject alike. Latency comes from a separate pass
per round that times every call on its own; the p50/p99 reported are medians
over the rounds, net of the timer's own cost.
The garbage collector stays on: the allocations a library makes are part of
its cost in a long-running server.

Run from the repository root::

    python bench/bench_memory.py            # full run, a few minutes
    python bench/bench_memory.py --quick    # smoke run, well under a minute
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import limits
import limits.storage.memory as limits_memory
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from pyrate_limiter import (
    AbstractBucket,
    AbstractClock,
    Duration,
    FixedWindow,
    InMemoryBucket,
    Limiter,
    MonotonicClock,
    StateBucket,
    TokenBucket,
)
from pyrate_limiter import Rate as PyrateRate

import ratekeeper
from harness.cli import Settings, parser
from harness.limiters import (
    MEMORY_RATE,
    SCENARIOS,
    Instance,
    PerKeyFactory,
    RateSpec,
    Scenario,
    Subject,
    comparison_table,
    groups,
)
from harness.measure import (
    Case,
    Measurement,
    Pass,
    compile_loops,
    latencies,
    measure,
    sequence,
    timer_overhead_ns,
)
from harness.report import heading, ns_text, print_header, print_targets, rate_text, table, verdict
from ratekeeper import MemoryStore, RateLimiter

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ratekeeper", "limits", "pyrate-limiter")
SECTIONS = ("throughput", "log", "memory", "policy")
TARGET_RATIO = 3.0  # ratekeeper's throughput over the fastest peer's, per algorithm
TARGET_SCALING = 2.0  # sliding_log cost at 100,000/day over its cost at 100/minute
TARGET_BYTES_PER_KEY = 300
TARGET_POLICY_RATE = 100_000  # policy-driven Limiter.check decisions per second
LATENCY_SAMPLES = (5_000, 100_000)  # calls timed one by one, over all rounds: quick, full
MEMORY_KEYS = (10_000, 100_000)  # quick, full


# --------------------------------------------------------------------------- #
# What is measured: a subject builds an instance for one rate.                 #
# --------------------------------------------------------------------------- #


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


class _SimPyrateClock(AbstractClock):
    def __init__(self, clock: SimClock) -> None:
        self.sim = clock

    def now(self) -> int:
        return int(self.sim.now * 1000)


def _pyrate(kind: str) -> Callable[[RateSpec, SimClock | None], Instance]:
    def build(rate: RateSpec, clock: SimClock | None) -> Instance:
        rates = [PyrateRate(rate.limit, Duration[rate.unit.upper()])]
        py_clock = MonotonicClock() if clock is None else _SimPyrateClock(clock)

        def make(key: str) -> AbstractBucket:
            if kind == "fixed_window":
                bucket: AbstractBucket = InMemoryBucket(rates, FixedWindow())
            elif kind == "sliding_log":
                bucket = InMemoryBucket(rates)
            else:
                bucket = StateBucket(rates, algorithm=TokenBucket())
            bucket._clock = py_clock  # README: buckets delegate to ``_clock``
            return bucket

        factory = PerKeyFactory(py_clock, make)
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
# One round of one case: the pass, then its calls one by one.                  #
# --------------------------------------------------------------------------- #


class LoopTrial:
    """An instance timed in the harness's compiled loop.

    The timed pass gives throughput; a separate, shorter pass then times every
    call on its own for the latencies, so reading the clock twice per call
    never slows the throughput figure.
    """

    def __init__(
        self, instance: Instance, check: Callable[[Instance], str | None], latency_calls: int
    ) -> None:
        self.instance = instance
        self.loops = compile_loops(instance.call, instance.names)
        self._check = check
        self.latency_calls = latency_calls

    def run(self, keys: list[Any]) -> int:
        start = time.perf_counter_ns()
        self.loops.run(keys)
        return time.perf_counter_ns() - start

    def timed_pass(self, keys: list[Any]) -> Pass:
        elapsed = self.run(keys)
        p50, p99 = latencies(self.loops.timed(sequence(keys, self.latency_calls)))
        return Pass(len(keys), elapsed, p50, p99)

    def check(self) -> str | None:
        return self._check(self.instance)

    def close(self) -> None:
        self.instance.close()


def loop_case(
    label: str,
    build: Callable[[], Instance],
    keys: list[Any],
    settings: Settings,
    check: Callable[[Instance], str | None] = lambda instance: None,
) -> Case:
    """A harness case for an instance that ``build`` brings to its regime; ``check``
    says whether it is still there afterwards (``None`` if it is)."""
    latency_calls = max(1_000, settings.pick(*LATENCY_SAMPLES) // settings.rounds)
    return Case(
        label,
        keys,
        lambda: LoopTrial(build(), check, latency_calls),
        warm_calls=max(2 * len(keys), 2_000),
    )


# --------------------------------------------------------------------------- #
# 1. Throughput and latency, scenarios A and B.                                #
# --------------------------------------------------------------------------- #


def _scenario_case(subject: Subject, scenario: Scenario, settings: Settings) -> Case:
    def build() -> Instance:
        instance = subject.build(scenario.rate_for(subject.algorithm), None)
        scenario.reach(instance)
        return instance

    label = f"{subject.library} {subject.label} ({subject.algorithm})"
    return loop_case(label, build, list(scenario.keys), settings, scenario.left)


def run_scenario(scenario: Scenario, settings: Settings) -> list[tuple[Subject, Measurement]]:
    print(
        f"  scenario {scenario.name}: {len(SUBJECTS)} subjects x {settings.rounds} rounds",
        flush=True,
    )
    cases = [_scenario_case(s, scenario, settings) for s in SUBJECTS]
    measurements = measure(cases, settings.rounds, settings.seconds)
    return list(zip(SUBJECTS, measurements, strict=True))


def print_throughput(scenario: Scenario, results: list[tuple[Subject, Measurement]]) -> list[str]:
    """Print the scenario's table; return the target lines for the summary."""
    name = scenario.name
    heading(f"Scenario {name}: {scenario.description} (rate {scenario.rate_text})")
    found = groups(results)
    print(comparison_table(found))
    verdicts = []
    for group in found:
        fastest = group.fastest
        if fastest is None:
            verdicts.append(f"scenario {name} {group.algorithm}: no peer to compare with")
            continue
        ratio = group.ours.best / fastest[1].best
        verdicts.append(
            f"scenario {name} {group.algorithm}: {ratio:.2f}x the fastest peer "
            f"(target >= {TARGET_RATIO:g}x): {verdict(ratio >= TARGET_RATIO)}"
        )
    return verdicts


# --------------------------------------------------------------------------- #
# 2. sliding_log: 100,000/day against 100/minute.                              #
# --------------------------------------------------------------------------- #

LOG_RATES = (RateSpec(100, "minute"), RateSpec(100_000, "day"))
LOG_SUBJECTS = [s for s in SUBJECTS if s.algorithm == "sliding_log"]


def _log_cases(subject: Subject, rate: RateSpec, settings: Settings) -> tuple[Case, Case]:
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
        loop_case(f"{label} steady", build_steady, ["k"], settings, steady_check),
        loop_case(f"{label} full", build_full, ["k"], settings, full_check),
    )


def run_log_scaling(settings: Settings) -> list[str]:
    """Two regimes per rate, one key each.

    steady: simulated time advances by 1.001 x (window / limit) per decision,
    so the log holds ~limit entries and every decision expires the oldest
    entry and appends one; all allowed. This is the regime where a log's
    length could show in its cost.
    full: real time; the log is filled to the limit, then every decision is
    denied.
    """
    pairs = [(subject, rate) for subject in LOG_SUBJECTS for rate in LOG_RATES]
    cases = [case for subject, rate in pairs for case in _log_cases(subject, rate, settings)]
    print(f"  sliding_log: {len(cases)} cases x {settings.rounds} rounds", flush=True)
    measurements = measure(cases, settings.rounds, settings.seconds)
    rows = []
    costs: dict[tuple[str, str], float] = {}
    for index, (subject, rate) in enumerate(pairs):
        steady, full = measurements[2 * index], measurements[2 * index + 1]
        costs[(subject.library, f"steady {rate.text}")] = steady.best_ns
        costs[(subject.library, f"full {rate.text}")] = full.best_ns
        rows.append(
            [
                subject.library,
                subject.label,
                rate.text,
                rate_text(steady.best),
                ns_text(steady.best_ns),
                rate_text(full.best),
                ns_text(full.best_ns),
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
    return summary


# --------------------------------------------------------------------------- #
# 3. Memory per tracked key.                                                   #
# --------------------------------------------------------------------------- #


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


def run_memory(settings: Settings) -> list[str]:
    count = settings.pick(*MEMORY_KEYS)
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
    return summary


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

        return loop_case(f"policy Limiter.check {label}", build, keys, settings, check)

    try:
        cases = [case(*variant) for variant in variants]
        measurements = measure(cases, settings.rounds, settings.seconds)
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


def main(argv: list[str] | None = None) -> None:
    options = parser(__doc__, SECTIONS, seconds="duration of one timed pass")
    options.add_argument("--pin", type=int, metavar="CPU", help="pin the process to one CPU")
    args = options.parse_args(argv)
    settings = Settings.from_args(args, SECTIONS, seconds=(0.05, 0.4), rounds=(2, 5))
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})

    print_header(
        "ratekeeper in-process engine vs limits and pyrate-limiter",
        PACKAGES,
        [
            f"method: best of {settings.rounds} rounds of ~{settings.seconds:g}s each "
            f"(median beside it), rounds interleaved across subjects; latency: "
            f"{settings.pick(*LATENCY_SAMPLES):,} individually timed calls spread over the "
            f"rounds, p50/p99 = median over rounds, net of {timer_overhead_ns():.0f} ns timer "
            "overhead; GC on"
        ],
        settings.quick,
    )
    summary: list[str] = []
    if "throughput" in settings.sections:
        for scenario in SCENARIOS.values():
            summary += print_throughput(scenario, run_scenario(scenario, settings))
    if "log" in settings.sections:
        summary += run_log_scaling(settings)
    if "memory" in settings.sections:
        summary += run_memory(settings)
    if "policy" in settings.sections:
        summary += run_policy_limiter(settings)
    print_targets(summary)


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()

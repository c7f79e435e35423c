"""Timing: loops compiled from one template, a call count calibrated per subject,
warm-up, rounds interleaved across subjects, best and median, latency percentiles.

Why each piece is the way it is:

- **One loop template** (as ``timeit`` does): every subject's call is inlined in
  the same loop with its names bound as locals, so loop overhead is identical
  for all and a library is never charged for an attribute lookup the loop made.
- **A call count per subject, calibrated once** (first round) so that a timed
  pass takes about ``--seconds`` whatever the subject costs, then kept: every
  round of one subject times the same work.
- **Rounds interleaved, order rotating**: round *r* starts at subject *r*, so
  machine noise (another process, a frequency change) falls on every subject
  alike instead of on whichever ran during it.
- **Best and median**: noise only ever adds time, so the best round is the
  closest to the cost; the median beside it shows how noisy the rows were.
- **Percentiles net of the timer**: a call timed on its own includes one clock
  read; its median cost is taken off, which matters for sub-microsecond calls.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import cycle, islice
from typing import Any, Protocol, TypeVar

# ``run`` makes the calls; ``timed`` makes them and returns each one's time in ns.
# ``key`` is the loop variable every call may use; async loops take the keys from
# one iterator shared by all the tasks running them.
_TEMPLATE = """
{prefix}def run(keys{params}):
    for key in keys:
        {call}

{prefix}def timed(keys{params}, _clock=_clock):
    samples = []
    append = samples.append
    for key in keys:
        start = _clock()
        {call}
        append(_clock() - start)
    return samples
"""


@dataclass(frozen=True)
class Loops:
    """``run(keys)`` and ``timed(keys) -> [ns]``; coroutine functions when compiled async."""

    run: Callable[[Any], Any]
    timed: Callable[[Any], Any]


def compile_loops(call: str, names: dict[str, Any], *, is_async: bool = False) -> Loops:
    """The template with ``call`` (a statement using ``key``) inlined, as timeit does.

    ``names`` become default arguments, so the loop reads them as locals; with
    ``is_async`` the loops are ``async def`` and ``call`` may ``await``.
    """
    namespace: dict[str, Any] = {"_clock": time.perf_counter_ns, **names}
    params = "".join(f", {name}={name}" for name in names)
    prefix = "async " if is_async else ""
    source = _TEMPLATE.format(prefix=prefix, params=params, call=call)
    exec(compile(source, "<bench loop>", "exec"), namespace)  # noqa: S102  # fixed template, timeit's technique
    return Loops(namespace["run"], namespace["timed"])


def sequence(keys: Sequence[Any], n: int) -> list[Any]:
    """``n`` calls' keys: a round-robin over ``keys``."""
    return list(islice(cycle(keys), n))


_TIMER_OVERHEAD_NS: float | None = None


def timer_overhead_ns() -> float:
    """The median cost of timing an empty statement, taken off latency percentiles."""
    global _TIMER_OVERHEAD_NS
    if _TIMER_OVERHEAD_NS is None:
        timed = compile_loops("pass", {}).timed
        _TIMER_OVERHEAD_NS = min(statistics.median(timed([None] * 50_000)) for _ in range(5))
    return _TIMER_OVERHEAD_NS


def percentile(sorted_samples: Sequence[float], fraction: float) -> float:
    index = min(len(sorted_samples) - 1, int(fraction * len(sorted_samples)))
    return float(sorted_samples[index])


def latencies(samples: list[int]) -> tuple[float, float]:
    """p50 and p99 of calls timed one by one, net of the timer's own cost."""
    samples.sort()
    overhead = timer_overhead_ns()
    return percentile(samples, 0.50) - overhead, percentile(samples, 0.99) - overhead


def calibrate(
    run: Callable[[int], int], seconds: float, first: tuple[int, int] | None = None
) -> int:
    """How many calls take about ``seconds``, given ``run(n)``: the ns that n calls took.

    Grows n (x4 while a run is under a hundredth of ``seconds``, x2 after) until
    a run takes a tenth of it, then scales: short probes, one long enough to
    trust. ``first`` is a run already made, (calls, ns), to start from (the
    warm-up: a slow subject needs no probe at all). Never under 200 calls: a
    p99 still has two calls above it, and a smoke run of a subject that makes
    a round trip per call stays short.
    """
    n, elapsed = first if first is not None else (1_000, run(1_000))
    while elapsed < seconds * 1e8 and n < 50_000_000:
        n *= 4 if elapsed < seconds * 1e7 else 2
        elapsed = run(n)
    return max(200, int(n * seconds * 1e9 / max(elapsed, 1)))


# --------------------------------------------------------------------------- #
# Passes, rounds and what they add up to.                                      #
# --------------------------------------------------------------------------- #


@dataclass
class Pass:
    """One timed pass of one subject in one round.

    ``ns`` is the wall time of the pass (or CPU time, where a benchmark says
    so); ``p50_ns``/``p99_ns`` the per-call latencies when calls were also
    timed one by one; ``extra`` what else the benchmark read over the pass.
    """

    calls: int
    ns: float
    p50_ns: float | None = None
    p99_ns: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self.calls * 1e9 / self.ns

    @property
    def ns_per_call(self) -> float:
        return self.ns / self.calls


def _median_or_nan(values: list[float]) -> float:
    return max(0.0, statistics.median(values)) if values else math.nan


@dataclass
class Measurement:
    """A subject's passes over all rounds: best and median, latencies, extras.

    Throughput is the best round (noise only ever adds time), the median beside
    it; latencies are the median over rounds of each round's percentile (nan
    when no pass timed its calls one by one), extras the median over rounds
    unless a benchmark asks for the worst.
    """

    passes: list[Pass]

    @property
    def rates(self) -> list[float]:
        return [p.rate for p in self.passes]

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def best_ns(self) -> float:
        """The cost of one call in the best round."""
        return min(p.ns_per_call for p in self.passes)

    @property
    def median_ns(self) -> float:
        return statistics.median(p.ns_per_call for p in self.passes)

    @property
    def spread(self) -> float:
        """(best - worst) / best over rounds: how much the rounds disagreed."""
        rates = self.rates
        return (max(rates) - min(rates)) / max(rates)

    @property
    def p50_ns(self) -> float:
        return _median_or_nan([p.p50_ns for p in self.passes if p.p50_ns is not None])

    @property
    def p99_ns(self) -> float:
        return _median_or_nan([p.p99_ns for p in self.passes if p.p99_ns is not None])

    def median_of(self, name: str) -> float:
        return statistics.median(p.extra[name] for p in self.passes)

    def worst_of(self, name: str) -> float:
        return max(p.extra[name] for p in self.passes)


def rotation(count: int, round_: int) -> list[int]:
    """The order of ``count`` subjects in round ``round_``: starting one further each round."""
    shift = round_ % count
    return [*range(shift, count), *range(shift)]


T = TypeVar("T")


def interleave(
    subjects: Sequence[T],
    rounds: int,
    one: Callable[[T, int | None], Pass],
    after_round: Callable[[int, list[Pass]], None] | None = None,
) -> list[Measurement]:
    """Time every subject once a round, ``rounds`` times, in rotating order.

    ``one(subject, calls)`` times one pass: ``calls`` is ``None`` in the
    subject's first round (calibrate) and that pass's call count after.
    ``after_round(round_, last)`` sees each subject's latest pass.
    """
    passes: list[list[Pass]] = [[] for _ in subjects]
    for round_ in range(rounds):
        for index in rotation(len(subjects), round_):
            calls = passes[index][0].calls if passes[index] else None
            passes[index].append(one(subjects[index], calls))
        if after_round is not None:
            after_round(round_, [p[-1] for p in passes])
    return [Measurement(p) for p in passes]


# --------------------------------------------------------------------------- #
# Calls in a loop: one fresh instance per round.                               #
# --------------------------------------------------------------------------- #


class Trial(Protocol):
    """A fresh instance of one subject, already in the regime to measure, for one round."""

    def run(self, keys: list[Any]) -> int:
        """Make one call per key; the wall time in ns (warm-up and calibration)."""

    def timed_pass(self, keys: list[Any]) -> Pass:
        """The measured pass: one call per key."""

    def check(self) -> str | None:
        """``None`` if the instance is still in its regime, else what went wrong."""

    def close(self) -> None: ...


@dataclass
class Case:
    """Something to time: ``open`` makes a fresh trial in its regime (warmed, a hot
    key used up, a log filled); ``keys`` are what the calls go round."""

    label: str
    keys: list[Any]
    open: Callable[[], Trial]
    warm_calls: int  # calls made before calibrating and timing, every round


def _probe(trial: Trial, keys: list[Any], n: int) -> int:
    return trial.run(sequence(keys, n))


def measure(
    cases: Sequence[Case],
    rounds: int,
    seconds: float,
    settle: Callable[[], None] = lambda: None,
) -> list[Measurement]:
    """Time every case once a round, interleaved; each round on a fresh instance.

    A round opens the case (so every round starts from the same state: a log
    does not grow from one round to the next, and only one library's objects
    are alive at a time, so no library's garbage is collected on another's
    clock), warms it up, calibrates the call count in the first round
    (starting from the warm-up's time), collects garbage, times one pass and
    checks the instance is still in its regime (the run stops if not).
    ``settle`` runs after each instance is closed and collected (a server
    waits for its clients to go).
    """

    def one(case: Case, calls: int | None) -> Pass:
        trial = case.open()
        try:
            warm = trial.run(sequence(case.keys, case.warm_calls))
            probe = partial(_probe, trial, case.keys)
            n = calls or calibrate(probe, seconds, first=(case.warm_calls, warm))
            del probe
            keys = sequence(case.keys, n)
            gc.collect()
            result = trial.timed_pass(keys)
            problem = trial.check()
            if problem is not None:
                sys.exit(f"{case.label}: {problem}")
            return result
        finally:
            trial.close()
            del trial
            gc.collect()
            settle()

    return interleave(cases, rounds, one)

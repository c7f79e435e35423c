"""What the rate limiter benchmarks share: rates, scenarios, subjects, the comparison.

``bench_memory.py`` and ``bench_redis.py`` put ratekeeper and the same two
peers through the same scenarios and print the same comparison (algorithm by
algorithm, ratekeeper against the fastest peer in the same run);
``profile_hit.py`` profiles ratekeeper in those scenarios. Defining them once
here keeps the in-process and Redis tables comparable row for row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from pyrate_limiter import AbstractBucket, AbstractClock, BucketFactory, RateItem

from harness.measure import Measurement
from harness.report import ns_text, rate_text, table

ALGORITHMS = ("fixed_window", "sliding_log", "sliding_window", "token_bucket")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


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


MEMORY_RATE = RateSpec(100, "day")  # a day: no state expires while memory is measured
#: a log holds at most 100,000 units (docs/algorithms.md, "Bounds"): scenario A's
#: sliding_log rows, every library's, run at 100,000/minute, still all allowed
LOG_MOST = 100_000


@dataclass
class Instance:
    """One configured limiter: ``call`` is a statement (or expression) using ``key``.

    ``names`` are what the statement refers to; ``decide`` makes one decision
    (for sanity checks, outside any timing); ``tracked`` counts the keys the
    limiter holds state for; ``close`` releases threads and connections.
    """

    call: str
    names: dict[str, Any]
    decide: Callable[[str], bool]
    tracked: Callable[[], int]
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Scenario:
    """Keys and a rate that put every limiter in one regime: all allowed, or all denied."""

    name: str
    description: str
    rate: RateSpec
    keys: tuple[str, ...]
    allowed: bool  # the answer to every call once the regime is reached

    def rate_for(self, algorithm: str) -> RateSpec:
        """The scenario's rate for ``algorithm``: the sliding log's within its bound."""
        if algorithm == "sliding_log" and self.rate.limit > LOG_MOST:
            return RateSpec(LOG_MOST, self.rate.unit)
        return self.rate

    @property
    def rate_text(self) -> str:
        """The scenario's rates as a table heading says them."""
        log = self.rate_for("sliding_log")
        return self.rate.text if log == self.rate else f"{self.rate.text}; sliding_log {log.text}"

    def reach(self, instance: Instance) -> None:
        """Bring a fresh instance into the regime: the hot key's quota used up."""
        if not self.allowed:
            for _ in range(self.rate.limit + 1):
                instance.decide(self.keys[0])

    def left(self, instance: Instance) -> str | None:
        """Whether the instance left the regime during a run, checked on two keys."""
        for key in (self.keys[0], self.keys[-1]):
            if instance.decide(key) is not self.allowed:
                return f"scenario {self.name} left its regime"
        return None


SCENARIOS = {
    "A": Scenario(
        "A",
        "1,000 keys round-robin, all allowed",
        RateSpec(1_000_000, "minute"),
        tuple(f"user:{i}" for i in range(1_000)),
        allowed=True,
    ),
    "B": Scenario("B", "one hot key, always denied", RateSpec(10, "day"), ("hot",), allowed=False),
}


class PerKeyFactory(BucketFactory):
    """One bucket per key, made on first use and its leak scheduled (as ``create`` does):
    pyrate-limiter's documented pattern (a ``Limiter(rate)`` without a factory
    would put every key in one bucket).

    ``make(key)`` builds the bucket; it may return an awaitable
    (``RedisBucket.init`` on an asyncio client), which the factory then answers
    and the ``Limiter`` awaits. Items are stamped by ``clock``.
    """

    def __init__(self, clock: AbstractClock, make: Callable[[str], Any]) -> None:
        self.clock = clock
        self.make = make
        self.buckets: dict[str, AbstractBucket] = {}

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, self.clock.now(), weight=weight)

    def get(self, item: RateItem) -> Any:
        bucket = self.buckets.get(item.name)
        if bucket is not None:
            return bucket
        made = self.make(item.name)
        if isawaitable(made):
            return self._keep_async(item.name, made)
        return self._keep(item.name, made)

    def _keep(self, name: str, bucket: AbstractBucket) -> AbstractBucket:
        self.buckets[name] = bucket
        self.schedule_leak(bucket)
        return bucket

    async def _keep_async(self, name: str, made: Awaitable[AbstractBucket]) -> AbstractBucket:
        return self._keep(name, await made)


# --------------------------------------------------------------------------- #
# Subjects and the comparison.                                                 #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Subject:
    """One library's way of deciding, compared with one ratekeeper algorithm;
    ``build`` makes a fresh instance (its arguments are the benchmark's)."""

    library: str
    label: str
    algorithm: str  # the ratekeeper algorithm it is compared with
    build: Callable[..., Any]

    @property
    def is_ratekeeper(self) -> bool:
        return self.library == "ratekeeper"


Row = tuple[Any, Measurement]  # a Subject (or a benchmark's subclass) and its measurement
Judge = Callable[[Any, Measurement], str | None]


@dataclass
class Group:
    """One algorithm's rows in one run, ratekeeper's first.

    ``judge(subject, m)`` says why a row cannot stand as a peer (it is a
    reference, or its answers were wrong), or ``None``; what it says is the
    row's ratio cell.
    """

    algorithm: str
    rows: list[Row]
    judge: Judge

    @property
    def ours(self) -> Measurement:
        return next(m for s, m in self.rows if s.is_ratekeeper)

    @property
    def fastest(self) -> Row | None:
        """The peer with the best throughput, among those the judge lets stand."""
        peers = [(s, m) for s, m in self.rows if not s.is_ratekeeper and self.judge(s, m) is None]
        return max(peers, key=lambda row: row[1].best, default=None)

    def ratio(self, subject: Any, m: Measurement) -> str:
        """ratekeeper's throughput against the fastest peer's, a peer's against ratekeeper's."""
        judged = self.judge(subject, m)
        if judged is not None:
            return judged
        if not subject.is_ratekeeper:
            return f"{m.best / self.ours.best:.2f}x ratekeeper"
        fastest = self.fastest
        return "no peer" if fastest is None else f"{m.best / fastest[1].best:.2f}x fastest peer"


def groups(rows: Sequence[Row], judge: Judge = lambda subject, m: None) -> list[Group]:
    """The rows by algorithm, in the order the algorithms first appear."""
    found: dict[str, Group] = {}
    for subject, m in rows:
        found.setdefault(subject.algorithm, Group(subject.algorithm, [], judge)).rows.append(
            (subject, m)
        )
    return list(found.values())


def comparison_table(
    found: Sequence[Group],
    columns: Sequence[tuple[str, Callable[[Any, Measurement], str]]] = (),
    ratio: str = "ratio",
) -> str:
    """Algorithm, library, what, throughput (best, median), p50/p99, the
    benchmark's own ``columns`` (header, cell), then the ratio."""
    headers = ["algorithm", "library", "what", "decisions/s (best)", "(median)", "p50 us", "p99 us"]
    rows = [
        [
            group.algorithm,
            subject.library,
            subject.label,
            rate_text(m.best),
            rate_text(m.median),
            ns_text(m.p50_ns),
            ns_text(m.p99_ns),
            *(cell(subject, m) for _, cell in columns),
            group.ratio(subject, m),
        ]
        for group in found
        for subject, m in group.rows
    ]
    return table([*headers, *(header for header, _ in columns), ratio], rows)

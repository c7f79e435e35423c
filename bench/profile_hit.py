"""Where a ``RateLimiter.hit`` on a ``MemoryStore`` spends its time.

Two views, for each algorithm, in the scenarios of ``bench_memory.py``
(A: 1,000 keys round-robin, all allowed; B: one hot key, always denied):

1. a breakdown: the whole call, then each stage of the path ``hit`` takes
   (the single-rate fast path ``_single`` / ``single_decision`` when there is
   one, else ``_charges`` / ``build_decision``) timed on its own with the same
   loop machinery as the benchmark, in nanoseconds per call. The stages reach
   into private names and the store's tables; when those change the breakdown
   says so and the profile still runs;
2. a profile of the plain hit loop: pyinstrument when installed (sampling, low
   overhead), otherwise cProfile (deterministic; it inflates per-call costs,
   so read it for proportions).

Run from the repository root::

    python bench/profile_hit.py                      # every algorithm, scenario A
    python bench/profile_hit.py -a token_bucket -s B
    python bench/profile_hit.py --profiler cprofile --no-breakdown
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import threading
import time
from collections import OrderedDict
from typing import Any

from harness.limiters import ALGORITHMS, SCENARIOS
from harness.measure import compile_loops, sequence
from harness.report import table
from ratekeeper import MemoryStore, RateLimiter


def ns_per_call(call: str, names: dict[str, Any], keys: list[Any], calls: int) -> float:
    """Best of 5 runs of ``calls`` calls of ``call``, in ns per call."""
    run = compile_loops(call, names).run
    seq = sequence(keys, calls)
    run(seq[: max(len(keys) * 2, 2_000)])
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        run(seq)
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def setup(algorithm: str, scenario: str) -> tuple[RateLimiter, MemoryStore, str, list[str]]:
    chosen = SCENARIOS[scenario]
    rate = chosen.rate_for(algorithm)
    store = MemoryStore()
    limiter = RateLimiter(store, algorithm=algorithm)
    keys = list(chosen.keys)
    if chosen.allowed:  # every key already has state, as in a timed round after warm-up
        for key in keys:
            limiter.hit(key, rate.text)
    else:  # the hot key's quota used up
        for _ in range(rate.limit + 1):
            limiter.hit(keys[0], rate.text)
    return limiter, store, rate.text, keys


def breakdown(algorithm: str, scenario: str, calls: int) -> None:
    """The whole call, then each stage of the path ``hit`` takes today, on its own.

    Follows the single-rate fast path (``_single`` + ``single_decision``) when
    the limiter has one, else the batch path (``_charges`` + ``build_decision``).
    """
    limiter, store, rates, keys = setup(algorithm, scenario)
    rows: list[list[str]] = []
    empty = ns_per_call("pass", {}, keys, calls)

    def add(stage: str, call: str, names: dict[str, Any], note: str = "") -> None:
        cost = ns_per_call(call, names, keys, calls) - empty
        rows.append([stage, f"{cost:.0f}", note])

    add("hit(key, rates): the whole call", "hit(key, rates)", {"hit": limiter.hit, "rates": rates})
    try:
        from ratekeeper.engine import _decisions as decision

        single = getattr(limiter, "_single", None)
        if single is not None and single(keys[0], rates, 1, None) is not None:
            plan_name, plan = "_single", single
            decide_name, decide = "single_decision", decision.single_decision
        else:
            plan_name, plan = "_charges", limiter._charges
            decide_name = "build_decision"

            def decide(admitted: bool, charges: Any, results: Any) -> Any:
                return decision.build_decision(admitted, charges, results, store.now_ns)

        charges = {key: plan(key, rates, 1, None) for key in keys}
        admitted, results = store.apply(charges[keys[0]])
        spec = charges[keys[0]][0][0]
        evaluate = getattr(spec, "evaluate", spec.algorithm.evaluate)
        data = store._tables[spec.slot].data
        now = store.now_ns()
    except (AttributeError, ImportError, KeyError, TypeError, ValueError) as error:
        rows.append(["(stages)", "-", f"private API changed: {error!r}"])
    else:
        add(
            f"  {plan_name}: plan lookup, argument checks, charges",
            "plan(key, rates, 1, None)",
            {"plan": plan, "rates": rates},
        )
        add(
            "  store.apply(charges)",
            "apply(charges[key])",
            {"apply": store.apply, "charges": charges},
            "lock, clock, table, evaluate, store, result",
        )
        add(
            "    evaluate(state, ...) (inside apply)",
            "evaluate(get(key), now, 1, limit, window, capacity)",
            {
                "evaluate": evaluate,
                "get": data.get,
                "now": now,
                "limit": spec.limit,
                "window": spec.window_ns,
                "capacity": spec.capacity,
            },
            "the pure algorithm, with one dict get",
        )
        add("    with lock: pass (inside apply)", "with lock: pass", {"lock": threading.Lock()})
        add("    time.time_ns() (inside apply)", "time_ns()", {"time_ns": time.time_ns})
        recency = OrderedDict.fromkeys(keys)  # the store's own table may drop expired keys
        add(
            "    OrderedDict get + move_to_end (inside apply)",
            "get(key); move_to_end(key)",
            {"get": recency.get, "move_to_end": recency.move_to_end},
        )
        add(
            f"  {decide_name}(...)",
            "decide(admitted, charges[key], results)",
            {"decide": decide, "admitted": admitted, "charges": charges, "results": results},
        )
        add(
            "    Decision(...) alone",
            "Decision(True, 1, 1, 1.0, 0.0, (), ())",
            {"Decision": decision.Decision},
        )
    print(f"\n### {algorithm}, scenario {scenario}: ns per call (loop overhead removed)\n")
    print(table(["stage", "ns/call", "note"], rows))


def profile(algorithm: str, scenario: str, calls: int, which: str) -> None:
    limiter, _store, rates, keys = setup(algorithm, scenario)
    run = compile_loops("hit(key, rates)", {"hit": limiter.hit, "rates": rates}).run
    seq = sequence(keys, calls)
    run(seq[:10_000])
    print(f"\n### {algorithm}, scenario {scenario}: profile of {calls:,} hits ({which})\n")
    if which == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        profiler.start()
        run(seq)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=True))
        return
    prof = cProfile.Profile()
    prof.enable()
    run(seq)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(15)
    print(out.getvalue())


def pick_profiler(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return "cprofile"
    return "pyinstrument"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-a", "--algorithm", choices=ALGORITHMS, action="append")
    parser.add_argument("-s", "--scenario", choices=sorted(SCENARIOS), default="A")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--profiler", choices=["auto", "pyinstrument", "cprofile"], default="auto")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    which = pick_profiler(args.profiler)
    for algorithm in args.algorithm or ALGORITHMS:
        if not args.no_breakdown:
            breakdown(algorithm, args.scenario, args.calls)
        if not args.no_profile:
            profile(algorithm, args.scenario, args.calls, which)


if __name__ == "__main__":
    main()

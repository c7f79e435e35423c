"""One harness for every benchmark in bench/: how to time, how to report.

A benchmark is a small module on it that declares its subjects (what is
compared) and its scenarios (the regime they are compared in), and says how one
pass of one subject is made; the harness does the rest, the same way for all:

- ``measure``: calls inlined in a loop compiled from one template (as
  ``timeit`` does), a call count calibrated per subject so a pass takes about
  ``--seconds``, warm-up, a fresh instance per round, rounds interleaved in
  rotating order so machine noise falls on every subject alike, best and
  median, latency percentiles net of the timer's own cost (``measure``,
  ``interleave``, ``Pass``, ``Measurement``);
- ``report``: Markdown tables, number formats, the run's header and its
  targets;
- ``machine``: git revision, CPU, versions, load average and CPU steal;
- ``cli``: ``--quick``, ``--seconds``, ``--rounds``/``--repeats``, ``--only``;
- ``limiters``: what the rate limiter benchmarks share: rates, scenarios A and
  B, subjects and instances, pyrate-limiter's per-key factory, and the
  comparison table (algorithm by algorithm, ratios against the fastest peer in
  the same run).

Scripts run as ``python bench/NAME.py`` from the repository root, so bench/ is
on ``sys.path`` and this package imports as ``harness``.

The garbage collector stays on in every benchmark: the allocations a library
makes are part of its cost in a long-running server.
"""

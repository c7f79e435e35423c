"""Output: Markdown tables, number formats, the run's header and its targets.

Every benchmark prints Markdown, padded so it also reads well in a terminal, and
can be pasted into docs/performance*.md as it is. The header says what was
measured where (machine facts, the command, the method) before any number.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence

from harness.machine import machine


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table, padded so it also reads well in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def rate_text(per_second: float) -> str:
    """Calls per second, in thousands or millions."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M"
    return f"{per_second / 1e3:.0f}k"


def ns_text(ns: float) -> str:
    """Nanoseconds in microseconds, two decimals under 10 us; "-" when not measured."""
    if math.isnan(ns):
        return "-"
    return f"{ns / 1000:.2f}" if ns < 10_000 else f"{ns / 1000:.0f}"


def ms_text(ns: float) -> str:
    """Nanoseconds in milliseconds, two decimals under 10 ms; "-" when not measured."""
    if math.isnan(ns):
        return "-"
    ms = ns / 1e6
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def heading(text: str) -> None:
    print(f"\n## {text}\n", flush=True)


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def print_header(
    title: str,
    packages: Sequence[str],
    lines: Iterable[str],
    quick: bool,
    setup: Iterable[str] = (),
) -> None:
    """The run's title, the machine (with ``packages``' versions) and the rest of
    the ``setup`` measured (a server), the command, then ``lines`` (what else the
    reader needs: the method, the load)."""
    print(f"# {title}\n")
    print(f"machine: {machine(packages)}")
    for line in setup:
        print(line)
    print(f"command: python {' '.join(sys.argv)}")
    for line in lines:
        print(line)
    if quick:
        print("QUICK RUN: numbers are indicative only")


def print_targets(summary: Iterable[str]) -> None:
    heading("Targets")
    for line in summary:
        print(f"- {line}")

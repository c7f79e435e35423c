"""The options every benchmark takes, and the settings they make.

``--quick`` (a smoke run, numbers indicative only), ``--seconds`` (one timed
pass), ``--rounds`` (``--repeats`` is the same option: the older scripts
called rounds repeats) and ``--only SECTION`` (repeatable). Each benchmark
adds its own options to the parser it gets here and picks its own defaults.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

T = TypeVar("T")


def parser(doc: str, sections: Sequence[str], seconds: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, with the common options.

    ``seconds`` is the help of ``--seconds``: what one timed pass is, there.
    """
    result = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    result.add_argument("--quick", action="store_true", help="short smoke run")
    result.add_argument("--seconds", type=float, help=seconds)
    result.add_argument(
        "--rounds", "--repeats", dest="rounds", type=int, help="timed rounds per measurement"
    )
    result.add_argument(
        "--only",
        choices=list(sections),
        action="append",
        help="run only these sections (repeatable)",
    )
    return result


@dataclass(frozen=True)
class Settings:
    seconds: float  # target duration of one timed pass
    rounds: int  # each subject is timed once a round
    quick: bool
    sections: frozenset[str]  # what --only left to run

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace,
        sections: Sequence[str],
        seconds: tuple[float, float],
        rounds: tuple[int, int],
        **more: Any,
    ) -> Self:
        """Settings from parsed options; ``seconds`` and ``rounds`` are the defaults
        (quick, full); ``more`` fills a subclass's own fields."""
        return cls(
            seconds=args.seconds or seconds[0 if args.quick else 1],
            rounds=args.rounds or rounds[0 if args.quick else 1],
            quick=args.quick,
            sections=frozenset(args.only or sections),
            **more,
        )

    def pick(self, quick: T, full: T) -> T:
        """``quick`` in a smoke run, else ``full``."""
        return quick if self.quick else full

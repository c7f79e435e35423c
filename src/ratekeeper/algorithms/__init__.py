"""Rate limiting algorithms as pure transitions of (state, now, cost, rate).

Each module holds one algorithm; ``ALGORITHMS`` maps the names used in code and
policy files to a shared instance (they are stateless).
"""

from __future__ import annotations

from .base import Algorithm, Evaluation
from .bounds import MAX_WINDOW_NS, check_cost, check_rate
from .fixed_window import FixedWindow
from .sliding_log import SlidingLog
from .sliding_window import SlidingWindow
from .token_bucket import TokenBucket

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "MAX_WINDOW_NS",
    "Algorithm",
    "Evaluation",
    "FixedWindow",
    "SlidingLog",
    "SlidingWindow",
    "TokenBucket",
    "check_cost",
    "check_rate",
    "get_algorithm",
]

DEFAULT_ALGORITHM = "sliding_window"

ALGORITHMS: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for algorithm in (SlidingWindow(), SlidingLog(), TokenBucket(), FixedWindow())
}


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        choices = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown algorithm {name!r}: choose one of {choices}") from None

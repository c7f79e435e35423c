"""The outcome words of analytics, metrics and the dashboard: one bounded set.

The engine says more than a chart needs (``admitted`` and ``exempt`` are
both "allowed"); these seven words are what ``ratekeeper_decisions_total``'s
``outcome`` label, the usage rows' counts and the dashboard show.
"""

from __future__ import annotations

from ..engine import (
    ADMITTED,
    BAD_REQUEST,
    BLOCKED,
    EXEMPT,
    LIMITED,
    OVER_CAP,
    UNAUTHORIZED,
    UNAVAILABLE,
)

__all__ = ["OUTCOME_WORDS", "ROW_INDEX", "outcome_word"]

#: every word, allowed first; the usage rows count them in this order (the last two together)
OUTCOME_WORDS = ("allowed", "rate", "cap", "block", "unknown_key", "unavailable", "bad_request")

_WORDS = {
    ADMITTED: "allowed",
    EXEMPT: "allowed",
    LIMITED: "rate",
    OVER_CAP: "cap",
    BLOCKED: "block",
    UNAUTHORIZED: "unknown_key",
    UNAVAILABLE: "unavailable",
    BAD_REQUEST: "bad_request",
}

#: an engine outcome to its count's index in a usage row: the words' order, unavailable and
#: bad_request counted together (allowed 0 ... other 5; the cost follows at 6)
ROW_INDEX = {outcome: min(OUTCOME_WORDS.index(word), 5) for outcome, word in _WORDS.items()}


def outcome_word(outcome: str, allowed: bool) -> str:
    """The word of an engine outcome: ``allowed`` for anything admitted (failing open
    included), else what refused it; an outcome the engine does not have is ``bad_request``."""
    if allowed:
        return "allowed"
    return _WORDS.get(outcome, "bad_request")

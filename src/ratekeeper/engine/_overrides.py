"""Per-item rate overrides: one fixed-window charge in place of a category's rates.

Envoy's ``RateLimitDescriptor`` may carry its own ``limit`` (a rate per
unit). The reference service (envoyproxy/ratelimit) then counts that
descriptor at that rate, in a clock-aligned fixed window of the unit,
whatever its config says of it, keyed by the domain and every entry. An item
of ``check_items(..., overrides=[...])`` given ``(rate, counter)`` does the
same: its category's rate limits are not charged; one ``fixed_window``
charge of ``rate`` is, under a key made of ``counter`` (the caller's opaque
text, e.g. ``"domain|k1=v1|k2=v2"``). The override is never shadow.

The counter key is ``<policy>:override:<rate>:{<digest>}``: the digest is
BLAKE2b-128 of the text, so any length and any character (braces included)
make a short key whose Redis Cluster hash tag is well formed, and one text is
one slot whatever its rates. The rate is in the key, outside the tag: two
rates on one counter text are two counters. (The reference keys by the
window alone, so 5/minute and 10/minute on one descriptor share a count;
here a count is never read against a limit it was not counted for, and the
refusal cache, keyed by window and key, cannot mistake one for the other.)

Specs are built once per distinct rate and kept (a bounded memo: the rates
come from callers). A rate ``fixed_window`` cannot count exactly
(:func:`ratekeeper.algorithms.check_rate`) or a window that is not whole
milliseconds (what Redis counts in) is a ``ValueError`` before anything is
charged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .._memo import BoundedMemo
from ..algorithms import ALGORITHMS, check_cost
from ..rates import NS_PER_MS, Rate
from ..stores.base import Charge, LimitSpec

__all__ = ["OVERRIDE_NAMES", "Override", "Overrides"]

#: what an item may carry: ``(rate, counter text)``, or ``None`` for no override
Override = tuple[Rate, str] | None
#: the name of an override's limit in ``decision.statuses``
OVERRIDE_NAMES = ("override",)

_FIXED_WINDOW = ALGORITHMS["fixed_window"]
_MAX_RATES = 1024  # distinct override rates kept before the memo starts over


class Overrides:
    """Turns the overrides of one ``check_items`` call into charges, one per item."""

    __slots__ = ("_head", "_specs")

    def __init__(self, policy_name: str) -> None:
        self._head = f"{policy_name}:override:"
        #: (limit, window ns) -> the rate's spec and the head of its counter keys
        self._specs: BoundedMemo[tuple[int, int], tuple[LimitSpec, str]] = BoundedMemo(_MAX_RATES)

    def charges(self, overrides: Sequence[Override], units: Sequence[int]) -> list[Charge | None]:
        """The charge of each item's override (``None``: none), ``units[i]`` each.

        Every override is checked before any is used: a bad one is an error
        before anything is planned or charged. Units 0 (a peek) count one.
        """
        if len(overrides) != len(units):
            raise ValueError(f"{len(overrides)} overrides for {len(units)} items")
        charges: list[Charge | None] = []
        for override, each in zip(overrides, units, strict=True):
            if override is None:
                charges.append(None)
                continue
            rate, counter = override
            if not isinstance(counter, str):
                raise TypeError(f"an override's counter must be text, got {type(counter).__name__}")
            spec, head = self.spec(rate)
            each = each or 1
            check_cost(_FIXED_WINDOW, each)
            charges.append((spec, head + _digest(counter) + "}", each, False))
        return charges

    def spec(self, rate: Rate) -> tuple[LimitSpec, str]:
        """The fixed-window spec of ``rate`` (its burst ignored) and the head of its keys."""
        if not isinstance(rate, Rate):
            raise TypeError(f"an override's rate must be a Rate, got {type(rate).__name__}")
        memo_key = (rate.limit, rate.window_ns)
        found = self._specs.answers.get(memo_key)
        if found is None:
            if rate.window_ns % NS_PER_MS:
                raise ValueError(
                    f"override rate {rate}: its window must be a whole number of milliseconds"
                )
            plain = Rate(rate.limit, rate.window_ns)
            spec = LimitSpec.of(_FIXED_WINDOW, plain)  # ValueError past what it counts exactly
            found = self._specs.keep(memo_key, (spec, f"{self._head}{plain}:{{"))
        return found

    def __len__(self) -> int:
        """How many rates' specs are kept."""
        return len(self._specs)


def _digest(counter: str) -> str:
    """A short, brace-free stand-in for ``counter``: hex BLAKE2b-128 of its UTF-8 bytes.

    ``surrogatepass``: a lone surrogate is hashed as its own bytes, never an error.
    """
    data = counter.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()

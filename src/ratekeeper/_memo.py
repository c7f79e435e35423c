"""One bounded memo: answers worked out once and kept, within a size.

The request path remembers many small answers so as not to work them out
again: the route of a (method, path), the counted form of a client address,
whether a peer is a trusted proxy, the record of a presented API key, the
charge plan of a (category, caller), the plan of a rate string. Each comes
from outside (paths, addresses, keys, rate strings callers build), so each
memo is bounded: once full, it forgets everything and starts over. Starting
over costs one recomputation per live entry; an LRU order would cost a
bookkeeping step on every hit, and these memos are read far more often than
they are filled.

Readers look in ``answers`` themselves (one dict lookup, no call on the hot
path) and :meth:`BoundedMemo.keep` what they worked out on a miss.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["BoundedMemo"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """A dict of answers that forgets everything once it holds ``size`` of them."""

    __slots__ = ("answers", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        #: the answers kept: read them directly; never add to them but through ``keep``
        self.answers: dict[K, V] = {}

    def keep(self, key: K, value: V) -> V:
        """Keep ``value`` as the answer for ``key`` (starting over when full); return it."""
        answers = self.answers
        if len(answers) >= self.size:
            answers.clear()
        answers[key] = value
        return value

    def clear(self) -> None:
        """Forget every answer."""
        self.answers.clear()

    def __len__(self) -> int:
        return len(self.answers)

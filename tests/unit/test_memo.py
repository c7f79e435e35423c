"""The one bounded memo: answers kept until it is full, then forgotten all at once."""

from __future__ import annotations

import pytest

from ratekeeper._memo import BoundedMemo


def test_a_memo_keeps_answers_until_full_then_starts_over() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(3)
    for n in range(3):
        assert memo.keep(f"k{n}", n) == n
    assert memo.answers == {"k0": 0, "k1": 1, "k2": 2}

    memo.keep("k3", 3)

    assert memo.answers == {"k3": 3}
    assert len(memo) == 1
    memo.clear()
    assert len(memo) == 0


def test_keeping_an_answer_again_replaces_it_without_growing() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(2)
    memo.keep("a", 1)
    memo.keep("a", 2)
    assert memo.answers == {"a": 2}


def test_a_memo_holds_at_least_one_answer() -> None:
    with pytest.raises(ValueError, match="size must be at least 1"):
        BoundedMemo(0)

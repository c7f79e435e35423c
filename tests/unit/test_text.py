"""``safe_text``: every string becomes text that encodes, and no two strings alike."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.text import MARK, safe_text

#: any code point, lone surrogates and the mark included, often
CHARS = st.one_of(
    st.characters(codec=None),
    st.sampled_from(["\udcff", "\ud800", "\udfff", MARK, "d", "c", "f", "0"]),
)
TEXTS = st.lists(CHARS, max_size=40).map("".join)

_ESCAPE = re.compile(f"{MARK}({MARK}|[0-9a-f]{{4}})")


def unescaped(text: str) -> str:
    """The string ``safe_text`` was given: the escaping read back."""
    return _ESCAPE.sub(lambda m: MARK if m[1] == MARK else chr(int(m[1], 16)), text)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_every_string_escapes_to_text_that_encodes_and_reads_back(text: str) -> None:
    escaped = safe_text(text)

    escaped.encode("utf-8")  # never raises
    assert unescaped(escaped) == text  # so no two strings escape alike


@settings(max_examples=100, deadline=None)
@given(TEXTS, TEXTS)
def test_two_different_strings_never_escape_alike(first: str, second: str) -> None:
    if first != second:
        assert safe_text(first) != safe_text(second)


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters=MARK)))
def test_valid_text_without_the_mark_is_unchanged(text: str) -> None:
    assert safe_text(text) == text


def test_ascii_text_is_handed_back_as_it_is() -> None:
    key = "scanner:api:{203.0.113.7}"

    assert safe_text(key) is key


def test_a_lone_surrogate_reads_as_the_mark_and_its_code_point() -> None:
    assert safe_text("/api/\udcff") == "/api/\ufffddcff"
    assert safe_text("\ud83d\ude00") == "\ufffdd83d\ufffdde00"  # a pair, as two code points


def test_the_escape_of_one_key_spelled_out_is_another_key() -> None:
    escaped = safe_text("\udcff")

    assert safe_text(escaped) == "\ufffd\ufffddcff" != escaped
    assert safe_text("caf\u00e9 \ufffd") == "caf\u00e9 \ufffd\ufffd"

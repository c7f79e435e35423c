"""Error bodies rendered from a policy's JSON template, prepared when the policy is compiled.

A string that is exactly one placeholder (``"{retry_after}"``) becomes the
value itself, typed (``"retryAfter": 30``); a string with placeholders inside
text is formatted (``"Please retry after {retry_after} seconds."``). The
template is analysed once; rendering walks a prepared tree.

A rendered body is at most :data:`MAX_BODY_BYTES` (64 KiB), whatever the
request: a placeholder such as ``{path}`` shows text from the request, which
the Python API does not bound (and a template of YAML aliases once rendered
5.8 MB on every 429). So the template is measured when it is made: its bytes
without its placeholders, and its number of placeholders, give each
placeholder a share of what is left (:attr:`BodyTemplate.value_chars`, in
characters, counting 6 bytes for each: the widest a character gets in JSON,
``\u001f``). A template that leaves a placeholder fewer than
:data:`MIN_VALUE_CHARS` is refused (:class:`BodyTooLargeError`, which the
policy compiler reports with the file and line). When rendering, a text value
longer than its share is cut there and ends with "…": the body stays valid
JSON, within the limit, and still says what it was about. No value is cut
that a real request makes (a share is at least 256 characters: an ordinary
template leaves each placeholder several thousand).
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_BODY_BYTES", "MIN_VALUE_CHARS", "BodyTemplate", "BodyTooLargeError"]

#: the largest body a template renders
MAX_BODY_BYTES = 64 * 1024
#: the fewest characters a template may leave each of its placeholders
MIN_VALUE_CHARS = 256
#: the most bytes one character of a value takes in the JSON (``\u001f``)
_WIDEST = 6

_LITERAL, _VALUE, _TEXT, _DICT, _LIST = range(5)


class BodyTooLargeError(ValueError):
    """A body template that cannot stay within :data:`MAX_BODY_BYTES`."""


def _prepare(template: Any) -> tuple[int, Any]:
    if isinstance(template, dict):
        return _DICT, tuple((key, _prepare(value)) for key, value in template.items())
    if isinstance(template, list):
        return _LIST, tuple(_prepare(value) for value in template)
    if isinstance(template, str):
        parsed = list(string.Formatter().parse(template))
        names = [name for _, name, _, _ in parsed if name is not None]
        if not names:
            return _LITERAL, template.replace("{{", "{").replace("}}", "}")
        if len(parsed) == 1 and parsed[0][0] == "" and template == "{" + names[0] + "}":
            return _VALUE, names[0]
        return _TEXT, template
    return _LITERAL, template


def _render(node: tuple[int, Any], values: Mapping[str, Any]) -> Any:
    kind, payload = node
    if kind == _LITERAL:
        return payload
    if kind == _VALUE:
        return values.get(payload)
    if kind == _TEXT:
        return payload.format_map(_Blank(values))
    if kind == _DICT:
        return {key: _render(child, values) for key, child in payload}
    return [_render(child, values) for child in payload]


class _Blank(dict[str, Any]):
    """Format values where a missing or ``None`` one reads as empty text."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)

    def __missing__(self, key: str) -> str:
        return ""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return "" if value is None else value


def _placeholders(node: tuple[int, Any], found: list[str]) -> list[str]:
    """Every placeholder of a prepared tree, once per place it appears."""
    kind, payload = node
    if kind == _VALUE:
        found.append(payload)
    elif kind == _TEXT:
        found.extend(name for _, name, _, _ in string.Formatter().parse(payload) if name)
    elif kind == _DICT:
        for _, child in payload:
            _placeholders(child, found)
    elif kind == _LIST:
        for child in payload:
            _placeholders(child, found)
    return found


class BodyTemplate:
    """A prepared JSON body template, rendered within :data:`MAX_BODY_BYTES`.

    Raises :class:`BodyTooLargeError` for a template that cannot be (module
    docstring).
    """

    __slots__ = ("_names", "_tree", "content_type", "status", "value_chars")

    def __init__(self, template: Any, *, status: int, content_type: str) -> None:
        self._tree = _prepare(template)
        self.status = status
        self.content_type = content_type
        places = _placeholders(self._tree, [])
        #: the placeholders a render reads: only their values are measured
        self._names = tuple(dict.fromkeys(places))
        # every placeholder missing: "" in text, null (4 bytes) as a value, which
        # is at least what an empty string takes there ('""')
        fixed = len(self._dump({}))
        if fixed > MAX_BODY_BYTES:
            raise BodyTooLargeError(
                f"a rendered body is at most {MAX_BODY_BYTES // 1024} KiB; this one takes "
                f"{fixed} bytes without its placeholders"
            )
        #: the most characters a text value shows (longer ones are cut: module docstring)
        self.value_chars = (
            (MAX_BODY_BYTES - fixed) // (_WIDEST * len(places)) if places else MAX_BODY_BYTES
        )
        if self.value_chars < MIN_VALUE_CHARS:
            raise BodyTooLargeError(
                f"a rendered body is at most {MAX_BODY_BYTES // 1024} KiB, and this template "
                f"({fixed} bytes, {len(places)} placeholders) would leave each placeholder "
                f"{self.value_chars} characters; it needs at least {MIN_VALUE_CHARS}"
            )

    def render(self, values: Mapping[str, Any]) -> bytes:
        """The body as UTF-8 JSON bytes (``", "`` and ``": "`` separators)."""
        limit = self.value_chars
        for name in self._names:
            value = values.get(name)
            if value.__class__ is str and len(value) > limit:
                values = _cut(values, self._names, limit)
                break
        return self._dump(values)

    def _dump(self, values: Mapping[str, Any]) -> bytes:
        return json.dumps(_render(self._tree, values), ensure_ascii=False).encode("utf-8")


def _cut(values: Mapping[str, Any], names: tuple[str, ...], limit: int) -> dict[str, Any]:
    """``values`` with every text value of ``names`` cut to ``limit`` characters, "…" last."""
    cut = dict(values)
    for name in names:
        value = cut.get(name)
        if isinstance(value, str) and len(value) > limit:
            cut[name] = value[: limit - 1] + "\u2026"
    return cut

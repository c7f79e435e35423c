"""Error bodies rendered from a policy's JSON template.

A string that is exactly one placeholder (``"{retry_after}"``) becomes the
value itself, typed (``"retryAfter": 30``); a string with placeholders inside
text is formatted (``"Please retry after {retry_after} seconds."``). The
template is analysed once; rendering walks a prepared tree.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

__all__ = ["BodyTemplate"]

_LITERAL, _VALUE, _TEXT, _DICT, _LIST = range(5)


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


class BodyTemplate:
    """A prepared JSON body template."""

    __slots__ = ("_tree", "content_type", "status")

    def __init__(self, template: Any, *, status: int, content_type: str) -> None:
        self._tree = _prepare(template)
        self.status = status
        self.content_type = content_type

    def render(self, values: Mapping[str, Any]) -> bytes:
        """The body as UTF-8 JSON bytes (``", "`` and ``": "`` separators)."""
        return json.dumps(_render(self._tree, values), ensure_ascii=False).encode("utf-8")

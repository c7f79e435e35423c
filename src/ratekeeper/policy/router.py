"""Request (method, path) to route target, in time that does not grow with exact routes.

Exact paths live in a dict; patterns are tried in the order the policy lists
them, after the exact paths. Within each, the first route whose methods admit
the request wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from .model import Route
from .patterns import compile_pattern

__all__ = ["Router"]

T = TypeVar("T")
_NO_PARAMS: dict[str, str] = {}


class Router(Generic[T]):
    """Finds the target of a request; built once from ``(route, target)`` pairs."""

    __slots__ = ("_exact", "_patterns")

    def __init__(self, routes: Iterable[tuple[Route, T]]) -> None:
        self._exact: dict[str, list[tuple[frozenset[str] | None, T]]] = {}
        self._patterns: list[tuple[frozenset[str] | None, object, T]] = []
        for route, target in routes:
            compiled = compile_pattern(route.pattern)
            if compiled.exact is not None:
                self._exact.setdefault(compiled.exact, []).append((route.methods, target))
            else:
                self._patterns.append((route.methods, compiled.regex, target))

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The target and captured path parameters, or ``None``.

        ``path`` must already be normalized (see ``normalize_path``).
        """
        candidates = self._exact.get(path)
        if candidates is not None:
            for methods, target in candidates:
                if methods is None or method in methods:
                    return target, _NO_PARAMS
        for methods, regex, target in self._patterns:
            if methods is not None and method not in methods:
                continue
            found = regex.match(path)  # type: ignore[attr-defined]
            if found is not None:
                return target, found.groupdict() or _NO_PARAMS
        return None

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._exact.values()) + len(self._patterns)

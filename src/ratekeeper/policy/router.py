"""Request (method, path) to route target, in time that does not grow with exact routes.

Exact paths live in a dict; patterns are tried in the order the policy lists
them, after the exact paths. Within each, the first route whose methods admit
the request wins.

:class:`RouteMemo` remembers the answer per (method, path) as the request
spelled them: a service sees the same few paths again and again, and a dict
hit costs a tenth of normalizing the path and trying the patterns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .._memo import BoundedMemo
from ..text import safe_text
from .model import Route
from .patterns import compile_pattern, normalize_path

__all__ = ["RequestMemo", "RouteMemo", "Router"]

T = TypeVar("T")
A = TypeVar("A")
_NO_PARAMS: dict[str, str] = {}
MEMO_SIZE = 1024  # (method, path) answers kept before the memo starts over
MEMO_PATH = 512  # longer paths are routed every time, not kept


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


#: ``(METHOD, normalized path, (target, path parameters) or None)``
Routed = tuple[str, str, tuple[T, dict[str, str]] | None]


class RequestMemo(BoundedMemo[tuple[str, str], A]):
    """Answers per (method, path) as requested, each worked out once by ``compute``.

    A :class:`~ratekeeper._memo.BoundedMemo`: after ``size`` different requests
    it forgets everything and starts over (paths with parameters,
    ``/agents/{node}/...``, keep coming new), and paths longer than 512
    characters are never kept. Readers look in ``answers`` themselves (a dict
    lookup, no call on the hot path) and call :meth:`fill` on a miss.
    """

    __slots__ = ("_compute",)

    def __init__(self, compute: Callable[[str, str], A], size: int = MEMO_SIZE) -> None:
        super().__init__(size)
        self._compute = compute

    def fill(self, method: str, path: str) -> A:
        """Work the answer out and keep it (unless the path is too long to keep)."""
        answer = self._compute(method, path)
        if len(path) <= MEMO_PATH:
            self.keep((method, path), answer)
        return answer


class RouteMemo(RequestMemo[Routed[T]]):
    """A router's answers per (method, path) as requested, normalized once.

    An answer is exactly what routing the request again would give; its
    parameters dictionary is shared between requests and must not be changed.
    """

    __slots__ = ("_router",)

    def __init__(self, router: Router[T], size: int = MEMO_SIZE) -> None:
        super().__init__(self._route, size)
        self._router = router

    def route(self, method: str, path: str) -> Routed[T]:
        """The upper-case method, the normalized path and what the router matches.

        Method and path come back as safe text (:func:`ratekeeper.text.safe_text`).
        """
        routed = self.answers.get((method, path))
        if routed is None:
            routed = self.fill(method, path)
        return routed

    def _route(self, method: str, path: str) -> Routed[T]:
        # the request's text enters here, once per (method, path): escaped so that
        # routes, counter keys and bodies never meet a lone surrogate (ratekeeper.text)
        if not method.isupper():
            method = method.upper()
        if not method.isascii():
            method = safe_text(method)
        path = normalize_path(path)
        if not path.isascii():
            path = safe_text(path)
        return method, path, self._router.match(method, path)

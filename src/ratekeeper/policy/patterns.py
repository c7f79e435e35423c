"""Path patterns of policy routes, compiled once into exact strings or regexes.

- ``/api/servers``        exact
- ``/agents/{node}/metrics``  ``{name}`` matches one path segment and captures it
- ``/files/*.pcap``       ``*`` matches within one segment
- ``/api/**``             ``**`` (last segment only) matches the rest: ``/api``,
  ``/api/x``, ``/api/x/y``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CompiledPattern",
    "ParsedPattern",
    "PatternError",
    "compile_pattern",
    "normalize_path",
    "parse_pattern",
]

_PARAM_RE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class PatternError(ValueError):
    """A route pattern that cannot be compiled."""


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """``exact`` for a literal path, else ``regex``; ``params`` it captures."""

    source: str
    exact: str | None
    regex: re.Pattern[str] | None
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParsedPattern:
    """A pattern checked and translated, not compiled: ``regex`` is the expression's text.

    Validation needs no more than this; compiling a regular expression costs
    about 1 us per character of it (``re`` parses it in Python), so a pattern
    is compiled once, by the router.
    """

    source: str
    exact: str | None
    regex: str | None
    params: tuple[str, ...]


def compile_pattern(pattern: str) -> CompiledPattern:
    """Compile one path pattern; :class:`PatternError` says what is wrong."""
    parsed = parse_pattern(pattern)
    regex = None if parsed.regex is None else re.compile(parsed.regex, re.DOTALL)
    return CompiledPattern(parsed.source, parsed.exact, regex, parsed.params)


def parse_pattern(pattern: str) -> ParsedPattern:
    """Check and translate one path pattern; :class:`PatternError` says what is wrong."""
    if not pattern.startswith("/"):
        raise PatternError(f"path pattern {pattern!r} must start with '/'")
    if pattern != "/" and pattern.endswith("/"):
        pattern = pattern.rstrip("/")
    if "*" not in pattern and "{" not in pattern and "}" not in pattern:
        return ParsedPattern(pattern, pattern, None, ())  # exact: nothing to translate
    segments = pattern.split("/")[1:]
    parts: list[str] = []
    params: list[str] = []
    literal = True
    for index, segment in enumerate(segments):
        if segment == "**":
            if index != len(segments) - 1:
                raise PatternError(f"'**' may only end a pattern, as in '/api/**': {pattern!r}")
            literal = False
            parts.append("(?:/.*)?")
            continue
        if "**" in segment:
            raise PatternError(f"'**' must be a whole segment in {pattern!r}")
        param = _PARAM_RE.match(segment)
        if param:
            name = param[1]
            if name in params:
                raise PatternError(f"parameter {{{name}}} appears twice in {pattern!r}")
            params.append(name)
            literal = False
            parts.append(f"/(?P<{name}>[^/]+)")
            continue
        if "{" in segment or "}" in segment:
            raise PatternError(
                f"segment {segment!r} of {pattern!r}: a parameter is a whole segment like '{{id}}'"
            )
        if "*" in segment:
            literal = False
            parts.append("/" + "[^/]*".join(re.escape(piece) for piece in segment.split("*")))
            continue
        parts.append("/" + re.escape(segment))
    if literal:
        return ParsedPattern(pattern, pattern, None, ())
    # compiled with re.DOTALL: '**' covers every rest, "\n" too
    return ParsedPattern(pattern, None, "".join(parts) + r"\Z", tuple(params))


def normalize_path(path: str) -> str:
    """The path as routes see it: no query, no repeated or trailing slash, no dot segments.

    A request for ``/api//scans/`` or ``/api/x/../scans`` must meet the same
    limits as ``/api/scans``: the app behind may well route it there.
    """
    if "?" in path:
        path = path.split("?", 1)[0]
    if _CONTROL_RE.search(path):
        path = _CONTROL_RE.sub("", path)
    if "//" in path or "/." in path:
        stack: list[str] = []
        for segment in path.split("/"):
            if segment in ("", "."):
                continue
            if segment == "..":
                if stack:
                    stack.pop()
                continue
            stack.append(segment)
        path = "/" + "/".join(stack)
    elif len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    return path or "/"

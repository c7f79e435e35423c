"""Reading a policy document (YAML or TOML) into plain data that remembers lines.

YAML mappings and lists are loaded as :class:`Located` containers that know the
line of each of their entries, so validation errors can point at the line an
operator must fix. TOML (read with the standard library) has no positions;
its errors name the file, and the line when tomllib gives one.

Whatever a file holds, reading it ends in data or a :class:`PolicyError` (with
the line where there is one), and takes time in proportion to its size:

- **Size.** A file larger than :data:`MAX_POLICY_BYTES` (1 MiB) is refused
  before it is parsed. A real policy is a few KiB; a big key registry a few
  hundred.
- **YAML aliases are refused** (``*name``), with the line. An alias repeats a
  value without repeating its text, so a few aliases of aliases made a
  534-byte file that took 2-4 s to load and rendered a 5.8 MB body on every
  429 (seven levels: over 30 s). Anchors alone are harmless and allowed;
  merge keys (``<<``), which exist to be used with aliases, are refused.
- **Nesting** deeper than :data:`MAX_DEPTH` levels is refused: 20,000 ``[``
  overflowed Python's stack (``RecursionError``, no file, no line). A policy
  needs about six levels; JSON bodies a few more.
- **Integers** longer than :data:`MAX_INTEGER_DIGITS` characters are refused
  before they are converted: Python converts long decimal text in quadratic
  time and refuses more than 4,300 digits with a ``ValueError``.
- A scalar its constructor cannot read (``!!timestamp 2001-13-45``,
  ``!!bool maybe``) is a :class:`PolicyError` with its line.
- Tags other than the standard scalar ones, and several documents in one
  file, are refused.

YAML is parsed by libyaml's event parser when PyYAML has it (its wheels do),
else by PyYAML's pure-Python one, and the data is built straight from the
events (no node tree, no second pass): 1 MiB of policy is parsed in about
0.2 s instead of 2.4 s (``bench/bench_policy_load.py``). TOML gets the same
depth and integer bounds once tomllib has read it.
"""

from __future__ import annotations

import re
import tomllib
import types
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from .errors import PolicyError

__all__ = [
    "MAX_DEPTH",
    "MAX_INTEGER_DIGITS",
    "MAX_POLICY_BYTES",
    "Located",
    "LocatedDict",
    "LocatedList",
    "check_plain_data",
    "parse_document",
    "read_document",
]

#: the largest policy file or text read (1 MiB)
MAX_POLICY_BYTES = 1 << 20
#: mappings and lists inside one another, the document itself being level 1
MAX_DEPTH = 64
#: the longest integer, in characters of its text (YAML) or decimal digits (TOML)
MAX_INTEGER_DIGITS = 100

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_MERGE = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {
    SequenceStartEvent: ("tag:yaml.org,2002:seq", None, "!"),
    MappingStartEvent: ("tag:yaml.org,2002:map", None, "!"),
}
_MISSING = object()
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)$")


class Located:
    """A container that knows its own line and its entries' lines (1-based)."""

    line: int | None = None
    lines: dict[Any, int]


class LocatedDict(dict[str, Any], Located):
    pass


class LocatedList(list[Any], Located):
    pass


class _PurePythonEvents(Reader, Scanner, Parser, SafeConstructor, Resolver):
    """PyYAML's own parser: events, tag resolution and scalar constructors."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)

    def dispose(self) -> None:
        """Nothing to free (libyaml's parser has something)."""


_Events: type[Any] = _PurePythonEvents
try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python parser
    pass
else:

    class _LibyamlEvents(CParser, SafeConstructor, Resolver):
        """libyaml's parser (C), with PyYAML's tag resolution and scalar constructors."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _Events = _LibyamlEvents


class _Builder:
    """Policy data straight from parser events: :class:`Located` containers and scalars."""

    def __init__(self, events: Any) -> None:
        self._events = events
        self._next = events.get_event
        # a plain scalar's text always reads as the same (immutable) value: read it once
        self._plain: dict[str, Any] = {}
        # the first characters of every implicit type (int, bool, null...): a plain
        # scalar starting with any other character is text, without asking the resolver
        resolvers = events.yaml_implicit_resolvers
        self._typed_starts = frozenset(resolvers) if None not in resolvers else None

    def document(self) -> Any:
        """The one document of the stream; ``None`` for an empty stream."""
        self._next()  # StreamStartEvent
        event = self._next()
        if isinstance(event, StreamEndEvent):
            return None
        value = self._value(self._next(), 1)  # after the DocumentStartEvent
        self._next()  # DocumentEndEvent
        event = self._next()
        if not isinstance(event, StreamEndEvent):
            raise PolicyError("a policy is one YAML document; found another", line=_line(event))
        return value

    def _value(self, event: Any, depth: int) -> Any:
        kind = event.__class__
        if kind is ScalarEvent:
            value = self._scalar(event)
            if value is _MERGE_KEY:
                raise _merge_error(event)
            return value
        if kind is AliasEvent:
            anchor = getattr(event, "anchor", "")
            raise PolicyError(
                f"YAML aliases (*{anchor}) are not allowed in a policy: write the value out "
                "where it is used",
                line=_line(event),
            )
        tags = _COLLECTION_TAGS.get(kind)
        if tags is None:
            raise PolicyError(f"unexpected YAML {kind.__name__}", line=_line(event))
        if depth > MAX_DEPTH:
            raise PolicyError(f"nested deeper than {MAX_DEPTH} levels", line=_line(event))
        tag = getattr(event, "tag", None)
        if tag not in tags:
            raise PolicyError(f"YAML tag {tag!r} is not supported in a policy", line=_line(event))
        if kind is SequenceStartEvent:
            return self._sequence(event, depth)
        return self._mapping(event, depth)

    def _sequence(self, start: Any, depth: int) -> LocatedList:
        result = LocatedList()
        result.line = start.start_mark.line + 1
        lines: dict[Any, int] = {}
        result.lines = lines
        next_event, scalar, append = self._next, self._scalar, result.append
        event = next_event()
        while event.__class__ is not SequenceEndEvent:
            lines[len(result)] = event.start_mark.line + 1
            if event.__class__ is ScalarEvent:  # most entries: no call of _value
                value = scalar(event)
                if value is _MERGE_KEY:
                    raise _merge_error(event)
                append(value)
            else:
                append(self._value(event, depth + 1))
            event = next_event()
        return result

    def _mapping(self, start: Any, depth: int) -> LocatedDict:
        result = LocatedDict()
        result.line = start.start_mark.line + 1
        lines: dict[Any, int] = {}
        result.lines = lines
        next_event, scalar = self._next, self._scalar
        event = next_event()
        while event.__class__ is not MappingEndEvent:
            line = event.start_mark.line + 1
            key = scalar(event) if event.__class__ is ScalarEvent else None
            if key.__class__ is not str:
                if key is _MERGE_KEY:
                    raise _merge_error(event)
                if not isinstance(key, str | int | float | bool):
                    raise PolicyError("mapping keys must be plain scalars", line=line)
                key = str(key)
            if key in result:
                raise PolicyError(f"duplicate key {key!r}", line=line)
            event = next_event()
            if event.__class__ is ScalarEvent:  # most values: no call of _value
                value = scalar(event)
                if value is _MERGE_KEY:
                    raise _merge_error(event)
                result[key] = value
            else:
                result[key] = self._value(event, depth + 1)
            lines[key] = line
            event = next_event()
        return result

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        text = event.value
        if tag is None or tag == "!":
            plain = event.implicit[0]
            if plain:
                if self._typed_starts is not None and text[:1] not in self._typed_starts:
                    return text
                found = self._plain.get(text, _MISSING)
                if found is not _MISSING:
                    return found
            tag = self._events.resolve(ScalarNode, text, event.implicit)
            if tag == _STR:
                return text
            value = self._construct(tag, event)
            if plain:
                self._plain[text] = value
            return value
        if tag == _STR:
            return text
        return self._construct(tag, event)

    def _construct(self, tag: str, event: Any) -> Any:
        if tag == _MERGE:
            return _MERGE_KEY
        if tag == _INT and len(event.value) > MAX_INTEGER_DIGITS:
            raise PolicyError(
                f"integer {event.value[:20]}... is {len(event.value)} characters long; "
                f"at most {MAX_INTEGER_DIGITS}",
                line=_line(event),
            )
        constructors = self._events.yaml_constructors
        construct = constructors.get(tag) or constructors[None]
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            value = construct(self._events, node)
            if isinstance(value, types.GeneratorType):  # a collection's tag on a scalar
                made = next(value)
                for _ in value:  # raises: "expected a sequence node, but found scalar"
                    pass
                value = made
        except yaml.YAMLError:
            raise
        except Exception as error:  # a constructor refusing its text raises what it raises
            raise PolicyError(
                f"cannot read {_shown(event.value)} as {tag.rpartition(':')[2]}: {error}",
                line=_line(event),
            ) from None
        return value


#: what ``<<`` reads as (a merge key, for use with aliases): refused where it is met
_MERGE_KEY = object()


def _merge_error(event: Any) -> PolicyError:
    return PolicyError(
        "YAML merge keys (<<) are not supported in a policy: write the fields out",
        line=_line(event),
    )


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def read_document(path: str | Path) -> tuple[Any, str]:
    """Load a policy file; returns ``(data, file name for messages)``."""
    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            raw = stream.read(MAX_POLICY_BYTES + 1)
    except OSError as error:
        raise PolicyError(
            f"cannot read policy file: {error.strerror or error}", file=file
        ) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(_too_large(), file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("policy file is not UTF-8 text", file=file) from None
    return parse_document(text, file, toml=file.endswith(".toml")), file


def parse_document(text: str, file: str = "<policy>", *, toml: bool = False) -> Any:
    """Parse policy text (YAML unless ``toml``); see the module docstring for the bounds."""
    if len(text) > MAX_POLICY_BYTES or (
        not text.isascii() and len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES
    ):
        raise PolicyError(_too_large(), file=file)
    if toml:
        return _parse_toml(text, file)
    try:
        return _parse_yaml(text)
    except PolicyError as error:
        raise PolicyError(error.message, file=file, line=error.line) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(f"invalid YAML: {error.problem}", file=file, line=line) from None
    except yaml.YAMLError as error:
        raise PolicyError(f"invalid YAML: {error}", file=file) from None
    except UnicodeError:  # libyaml reads UTF-8: a lone surrogate cannot be encoded
        raise PolicyError("policy text is not valid Unicode text", file=file) from None


def _parse_yaml(text: str) -> Any:
    events = _Events(text)
    try:
        return _Builder(events).document()
    finally:
        events.dispose()


def _too_large() -> str:
    return f"a policy is at most {MAX_POLICY_BYTES // 1024} KiB (1 MiB); this one is larger"


def _parse_toml(text: str, file: str) -> Any:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = _TOML_LINE.search(str(error))
        line = int(found[1]) if found else None
        raise PolicyError(f"invalid TOML: {error}", file=file, line=line) from None
    except RecursionError:
        raise PolicyError(
            f"invalid TOML: nested deeper than {MAX_DEPTH} levels", file=file
        ) from None
    except ValueError as error:  # int() of more than 4,300 digits, inside tomllib
        raise PolicyError(f"invalid TOML: {error}", file=file) from None
    check_plain_data(data, file)
    return data


_MAX_INTEGER = 10**MAX_INTEGER_DIGITS


def check_plain_data(data: Any, file: str | None) -> None:
    """Refuse data nested deeper than :data:`MAX_DEPTH` or holding integers too long.

    For data that did not come through the YAML reader (TOML, plain dicts). It
    walks with a stack of its own, so data nested beyond Python's recursion
    limit (or a structure that contains itself) is refused, not overflowed.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise PolicyError(f"nested deeper than {MAX_DEPTH} levels", file=file)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(value, int) and not -_MAX_INTEGER < value < _MAX_INTEGER:
            raise PolicyError(f"an integer has more than {MAX_INTEGER_DIGITS} digits", file=file)

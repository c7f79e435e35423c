"""A cursor over a policy document that knows where it is, for exact errors.

Validation code asks a :class:`Field` for the shape it expects (a mapping with
these keys, a rate, a duration...) and gets either the value or a
:class:`PolicyError` naming the file, line and dotted field path.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from typing import Any

from ..rates import NS_PER_SECOND, Rate, parse_rates
from .errors import PolicyError
from .source import Located

__all__ = ["Field", "parse_duration"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_DURATION_UNITS = {
    "": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip


def parse_duration(value: object) -> float:
    """``"15 minutes"``, ``"90s"``, ``"1h"`` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text such as '15 minutes'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        unit = _DURATION_UNITS.get(match[2].lower()) if match else None
        if match is None or unit is None:
            raise ValueError(f"malformed duration {value!r}: use e.g. '30s', '15 minutes', '1h'")
        seconds = float(match[1]) * unit
    else:
        raise ValueError("a duration is a number of seconds or text such as '15 minutes'")
    if not seconds > 0:  # NaN too
        raise ValueError(f"duration must be positive, got {value!r}")
    if seconds == math.inf:  # "1e400", or 400 nines: a block that never ends overflows
        raise ValueError(f"duration must be finite, got {_shown(value)}")
    return seconds


class Field:
    """A value found at ``path`` in ``file`` (at ``line`` when known)."""

    __slots__ = ("file", "line", "path", "value")

    def __init__(self, value: Any, path: str, line: int | None, file: str | None) -> None:
        self.value = value
        self.path = path
        self.line = line
        self.file = file

    def error(self, message: str) -> PolicyError:
        return PolicyError(message, file=self.file, line=self.line, field=self.path)

    def _child(self, key: Any, value: Any, label: str) -> Field:
        line = self.line
        container = self.value
        if isinstance(container, Located):
            line = container.lines.get(key, container.line or line)
        if isinstance(value, Located) and value.line is not None and not isinstance(key, str):
            line = value.line
        path = f"{self.path}{label}" if self.path else label.lstrip(".")
        return Field(value, path, line, self.file)

    # shapes

    def mapping(
        self, allowed: set[str] | None = None, required: tuple[str, ...] = ()
    ) -> dict[str, Field]:
        """The entries of a mapping, refusing unknown and missing keys."""
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping, got {_kind(self.value)}")
        fields = {str(key): self._child(key, value, f".{key}") for key, value in self.value.items()}
        if allowed is not None:
            for key, field in fields.items():
                if key not in allowed:
                    hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                    known = ", ".join(sorted(allowed))
                    raise field.error(f"unknown field {key!r}{suggestion}; known fields: {known}")
        for key in required:
            if key not in fields:
                raise self.error(f"missing required field {key!r}")
        return fields

    def items(self) -> Iterator[Field]:
        """The entries of a list; a single value counts as a list of one."""
        if isinstance(self.value, list):
            for index, value in enumerate(self.value):
                yield self._child(index, value, f"[{index}]")
        else:
            yield self

    def string(self, *, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.error(f"expected a non-empty string, got {_kind(self.value)}")
        value: str = self.value.strip()
        if choices is not None and value not in choices:
            raise self.error(f"expected one of {', '.join(choices)}; got {value!r}")
        return value

    def strings(self) -> tuple[str, ...]:
        """A string or a list of strings."""
        return tuple(item.string() for item in self.items())

    def integer(self, *, minimum: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.error(f"expected a whole number, got {_kind(self.value)}")
        if minimum is not None and self.value < minimum:
            raise self.error(f"must be at least {minimum}, got {self.value}")
        return self.value

    def number(self, *, minimum: float | None = None) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.error(f"expected a number, got {_kind(self.value)}")
        if not math.isfinite(self.value):  # .nan and .inf read as floats
            raise self.error(f"expected a finite number, got {self.value!r}")
        if minimum is not None and self.value < minimum:
            raise self.error(f"must be at least {minimum}, got {self.value}")
        return float(self.value)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"expected true or false, got {_kind(self.value)}")
        return self.value

    def duration(self) -> float:
        try:
            return parse_duration(self.value)
        except ValueError as error:
            raise self.error(str(error)) from None

    def duration_ns(self) -> int:
        return round(self.duration() * NS_PER_SECOND)

    def rates(self) -> tuple[Rate, ...]:
        """A rate string such as ``"60/minute;1000/hour"``; ``()`` for unlimited."""
        if not isinstance(self.value, str):
            raise self.error(f"expected a rate such as '60/minute', got {_kind(self.value)}")
        try:
            return parse_rates(self.value)
        except ValueError as error:
            raise self.error(str(error)) from None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"{type(value).__name__} {value!r}"

"""Reading a policy document (YAML or TOML) into plain data that remembers lines.

YAML mappings and lists are loaded as :class:`Located` containers that know the
line of each of their entries, so validation errors can point at the line an
operator must fix. TOML (read with the standard library) has no positions;
its errors name the file and the field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from .errors import PolicyError

__all__ = ["Located", "LocatedDict", "LocatedList", "read_document"]


class Located:
    """A container that knows its own line and its entries' lines (1-based)."""

    line: int | None = None
    lines: dict[Any, int]


class LocatedDict(dict[str, Any], Located):
    pass


class LocatedList(list[Any], Located):
    pass


class _LineLoader(yaml.SafeLoader):
    """A safe loader that builds :class:`Located` containers."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LocatedDict:
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise PolicyError(
                "mapping keys must be plain scalars", line=key_node.start_mark.line + 1
            )
        key = str(key)
        if key in result:
            raise PolicyError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = {index: child.start_mark.line + 1 for index, child in enumerate(node.value)}
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def read_document(path: str | Path) -> tuple[Any, str]:
    """Load a policy file; returns ``(data, file name for messages)``."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(
            f"cannot read policy file: {error.strerror or error}", file=file
        ) from None
    except UnicodeDecodeError:
        raise PolicyError("policy file is not UTF-8 text", file=file) from None
    return parse_document(text, file, toml=file.endswith(".toml")), file


def parse_document(text: str, file: str = "<policy>", *, toml: bool = False) -> Any:
    """Parse policy text (YAML unless ``toml``)."""
    if toml:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise PolicyError(f"invalid TOML: {error}", file=file) from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except PolicyError as error:
        raise PolicyError(error.message, file=file, line=error.line) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(f"invalid YAML: {error.problem}", file=file, line=line) from None
    except yaml.YAMLError as error:
        raise PolicyError(f"invalid YAML: {error}", file=file) from None

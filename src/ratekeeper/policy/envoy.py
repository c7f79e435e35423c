"""The ``envoy:`` section of a policy: Envoy's rate limit descriptors read as callers.

Envoy asks a rate limit service about *descriptors*, lists of ``(key,
value)`` entries its route configuration builds (``remote_address``,
``generic_key``, request headers, ...), not about a method and a path. This
section says what each entry means to ratekeeper, so that a descriptor is
decided as a request of a policy category by a caller, with the policy's
plans, algorithms, caps, lockouts and answers::

    envoy:
      domain: flowtriq                 # the domain Envoy names (any, when left out)
      entries:                         # what an entry's key says of the caller
        remote_address: client_ip
        api_key: api_key               # looked up as an API key: its plan applies
        node: node
        tenant: header:X-Tenant        # a header a limit counts by (header:NAME)
      descriptors:                     # which category a descriptor is charged to
        - {match: {generic_key: heartbeat}, category: heartbeat}
        - {match: {generic_key: "*"}, category: api}      # "*": the key with any value
      route: {method: method, path: path}   # else: routed by the policy's own routes

A descriptor is charged to the category of the first rule whose every entry
it has (with that value, or any for ``"*"``), else, with ``route``, to the
category its method and path entries route to (path parameters included);
a descriptor with neither is not limited, as the reference service answers
a descriptor it has no limit for. Read by :mod:`ratekeeper.server.envoy`.

``tree`` (instead of ``descriptors``) reads descriptors as the reference
service does (envoyproxy/ratelimit; ``--envoy-config`` compiles its YAML
to it): nested nodes ``{key, value, category, descriptors}``, a descriptor
walked entry by entry in order, at each level the node with its key and
value, else the one with its key and no value (any value), never back; the
node where the entries end gives the category (none: not limited)::

      tree:
        - key: database
          value: users
          category: users
          descriptors: [{key: user, category: per_user}]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .fields import Field

__all__ = ["ENTRY_MEANINGS", "EnvoyMapping", "EnvoyNode", "EnvoyRule", "envoy_mapping"]

#: what a descriptor entry can say of the caller; ``header:NAME``, ``path:NAME`` take a name
ENTRY_MEANINGS = ("client_ip", "api_key", "user", "node", "header", "path")

_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True, slots=True)
class EnvoyRule:
    """A descriptor with every entry of ``match`` (value ``None``: any) goes to ``category``."""

    match: tuple[tuple[str, str | None], ...]
    category: str


@dataclass(frozen=True, slots=True)
class EnvoyNode:
    """A node of a ``tree``: the category a descriptor ending here goes to, and the next level."""

    category: str | None = None
    #: ``(key, value)`` (value ``None``: any value) -> the node one entry further
    children: dict[tuple[str, str | None], EnvoyNode] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnvoyMapping:
    """How descriptors become (category, caller) items; see the module's docstring."""

    domain: str | None = None
    entries: dict[str, str] = field(default_factory=dict)
    rules: tuple[EnvoyRule, ...] = ()
    #: ``(method entry key, path entry key)`` routed by the policy's routes, or ``None``
    route: tuple[str, str] | None = None
    #: the reference service's nested descriptors (``tree``), or ``None``
    tree: EnvoyNode | None = None


def envoy_mapping(field_: Field, categories: frozenset[str]) -> EnvoyMapping:
    """The validated ``envoy:`` section; ``categories``: the policy's category names."""
    spec = field_.mapping({"domain", "entries", "descriptors", "route", "tree"})
    entries: dict[str, str] = {}
    if "entries" in spec:
        for key, meaning in spec["entries"].mapping().items():
            entries[key] = _meaning(meaning)
    rules: list[EnvoyRule] = []
    if "descriptors" in spec:
        for item in spec["descriptors"].items():
            rule = item.mapping({"match", "category"}, required=("match", "category"))
            pairs = tuple(
                (key, None if value.string() == "*" else value.string())
                for key, value in rule["match"].mapping().items()
            )
            if not pairs:
                raise rule["match"].error("name at least one entry to match")
            category = rule["category"].string()
            if category not in categories:
                raise rule["category"].error(f"no category named {category!r}")
            rules.append(EnvoyRule(pairs, category))
    route: tuple[str, str] | None = None
    if "route" in spec:
        parts = spec["route"].mapping({"method", "path"}, required=("path",))
        method = parts["method"].string() if "method" in parts else ":method"
        route = (method, parts["path"].string())
    tree: EnvoyNode | None = None
    if "tree" in spec:
        if rules or route is not None:
            raise spec["tree"].error("a tree stands alone: no 'descriptors' or 'route' beside it")
        tree = EnvoyNode(None, _level(spec["tree"], categories))
    if not rules and route is None and tree is None:
        raise field_.error(
            "say which category a descriptor is charged to: 'descriptors', 'route' or 'tree'"
        )
    domain = spec["domain"].string() if "domain" in spec else None
    return EnvoyMapping(domain, entries, tuple(rules), route, tree)


def _level(field_: Field, categories: frozenset[str]) -> dict[tuple[str, str | None], EnvoyNode]:
    level: dict[tuple[str, str | None], EnvoyNode] = {}
    for item in field_.items():
        spec = item.mapping({"key", "value", "category", "descriptors"}, required=("key",))
        key = spec["key"].string()
        value = spec["value"].string() if "value" in spec else None
        if (key, value) in level:
            shown = key if value is None else f"{key}={value}"
            raise item.error(f"a second node for {shown!r} at this level")
        category = None
        if "category" in spec:
            category = spec["category"].string()
            if category not in categories:
                raise spec["category"].error(f"no category named {category!r}")
        children = _level(spec["descriptors"], categories) if "descriptors" in spec else {}
        level[key, value] = EnvoyNode(category, children)
    return level


def _meaning(field_: Field) -> str:
    value = field_.string()
    kind, _, name = value.partition(":")
    if kind not in ENTRY_MEANINGS:
        raise field_.error(
            f"an entry cannot mean {value!r}: use client_ip, api_key, user, node, "
            "header:NAME or path:NAME"
        )
    if kind in ("header", "path"):
        if not name:
            raise field_.error(f"{kind!r} needs a name, as in '{kind}:X-Tenant'")
        if kind == "header" and not _HEADER_RE.match(name):
            raise field_.error(f"{name!r} is not a header name")
    elif name:
        raise field_.error(f"{kind!r} takes no name")
    return value

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
to it): nested nodes, a descriptor walked entry by entry in order, at each
level the node with its key and value, else the first whose value pattern
(``*``: any text) matches, else the one with its key and no value (any
value), never back; the node where the entries end says what happens::

      tree:
        - key: database
          value: users
          category: users                    # charged to this category
          descriptors: [{key: user, category: per_user}]
        - {key: ldap, unlimited: true}       # OK, nothing counted
        - {key: remote_address, value: 50.0.0.5, deny: second}   # 0 per second: refused
        - key: files
          value: "files/*"
          share: true                        # every match counts as "files/*"
          category: files
        - {key: user, value: bkthomps, category: special, name: specific}
        - {key: user, category: generic, replaces: [specific]}

``name``/``replaces``: when a request's descriptors end at a node that
replaces a name, the descriptors ending at a node of that name are not
limited. ``shadow`` (with ``deny``): reported, never refused. ``metric``: the
rule's name in metrics (the reference's stats key). ``trees`` holds one tree
per domain (``{domain: [nodes]}``) where one service answers several.
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


#: a value pattern's ``*``-separated parts, and the node it leads to
Wildcard = tuple[str, "re.Pattern[str]", "EnvoyNode"]


@dataclass(frozen=True, slots=True)
class EnvoyNode:
    """A node of a ``tree``: what a descriptor ending here gets, and the next level."""

    category: str | None = None
    #: ``(key, value)`` (value ``None``: any value) -> the node one entry further
    children: dict[tuple[str, str | None], EnvoyNode] = field(default_factory=dict)
    #: children whose value is a pattern, in the file's order: ``(key, pattern, node)``
    wildcards: tuple[Wildcard, ...] = ()
    #: the value a match of this node's pattern counts as (``share``), else its own
    shared: str | None = None
    unlimited: bool = False
    #: ``requests_per_unit: 0``: the unit's seconds; every hit is refused
    deny: int | None = None
    #: with ``deny``: reported, never refused
    shadow: bool = False
    name: str | None = None
    replaces: frozenset[str] = frozenset()
    metric: str | None = None


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
    #: one tree per domain (``trees``)
    trees: dict[str, EnvoyNode] = field(default_factory=dict)


def envoy_mapping(field_: Field, categories: frozenset[str]) -> EnvoyMapping:
    """The validated ``envoy:`` section; ``categories``: the policy's category names."""
    spec = field_.mapping({"domain", "entries", "descriptors", "route", "tree", "trees"})
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
    trees: dict[str, EnvoyNode] = {}
    for name in ("tree", "trees"):
        if name in spec and (rules or route is not None):
            raise spec[name].error(f"a {name} stands alone: no 'descriptors' or 'route' beside it")
    if "tree" in spec:
        if "trees" in spec:
            raise spec["trees"].error("give 'tree' (one domain) or 'trees', not both")
        tree = _root(spec["tree"], categories)
    if "trees" in spec:
        if "domain" in spec:
            raise spec["domain"].error("'trees' names its domains: no 'domain' beside it")
        trees = {
            domain: _root(nodes, categories) for domain, nodes in spec["trees"].mapping().items()
        }
    if not rules and route is None and tree is None and not trees:
        raise field_.error(
            "say which category a descriptor is charged to: 'descriptors', 'route' or 'tree'"
        )
    domain = spec["domain"].string() if "domain" in spec else None
    return EnvoyMapping(domain, entries, tuple(rules), route, tree, trees)


_NODE_FIELDS = {
    "key", "value", "category", "descriptors", "unlimited", "deny", "shadow", "share",
    "name", "replaces", "metric",
}  # fmt: skip
_UNIT_SECONDS = {
    "second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
    "month": 2592000, "year": 31536000,
}  # fmt: skip


def _root(field_: Field, categories: frozenset[str]) -> EnvoyNode:
    children, wildcards = _level(field_, categories)
    return EnvoyNode(None, children, wildcards)


def _level(
    field_: Field, categories: frozenset[str]
) -> tuple[dict[tuple[str, str | None], EnvoyNode], tuple[Wildcard, ...]]:
    level: dict[tuple[str, str | None], EnvoyNode] = {}
    wildcards: list[Wildcard] = []
    for item in field_.items():
        spec = item.mapping(_NODE_FIELDS, required=("key",))
        key = spec["key"].string()
        value = spec["value"].string() if "value" in spec else None
        if (key, value) in level:
            shown = key if value is None else f"{key}={value}"
            raise item.error(f"a second node for {shown!r} at this level")
        node = _node(spec, value, categories)
        level[key, value] = node
        if value is not None and "*" in value:
            wildcards.append((key, _pattern(value), node))
        elif node.shared is not None:
            raise spec["share"].error("'share' counts the matches of a value with '*' as one")
    return level, tuple(wildcards)


def _node(spec: dict[str, Field], value: str | None, categories: frozenset[str]) -> EnvoyNode:
    category = None
    if "category" in spec:
        category = spec["category"].string()
        if category not in categories:
            raise spec["category"].error(f"no category named {category!r}")
    unlimited = spec["unlimited"].boolean() if "unlimited" in spec else False
    deny = None
    if "deny" in spec:
        deny = _UNIT_SECONDS[spec["deny"].string(choices=tuple(_UNIT_SECONDS))]
    if sum((category is not None, unlimited, deny is not None)) > 1:
        raise spec["key"].error("a node has one of 'category', 'unlimited' and 'deny'")
    shadow = spec["shadow"].boolean() if "shadow" in spec else False
    if shadow and deny is None:
        raise spec["shadow"].error("'shadow' goes with 'deny' (a limit's own 'shadow' says it)")
    share = spec["share"].boolean() if "share" in spec else False
    name = spec["name"].string() if "name" in spec else None
    replaces = frozenset(spec["replaces"].strings()) if "replaces" in spec else frozenset()
    if name is not None and name in replaces:
        raise spec["replaces"].error(f"a node cannot replace its own name {name!r}")
    children, wildcards = (
        _level(spec["descriptors"], categories) if "descriptors" in spec else ({}, ())
    )
    return EnvoyNode(
        category, children, wildcards,
        shared=value if share else None,
        unlimited=unlimited, deny=deny, shadow=shadow, name=name, replaces=replaces,
        metric=spec["metric"].string() if "metric" in spec else None,
    )  # fmt: skip


def _pattern(value: str) -> re.Pattern[str]:
    """A value with ``*`` (any text, empty included) as one whole-value match."""
    return re.compile(".*".join(re.escape(part) for part in value.split("*")), re.DOTALL)


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

"""Envoy's descriptors as the engine's (category, caller) items: no gRPC, no I/O.

The policy's ``envoy:`` section (:mod:`ratekeeper.policy.envoy`) says what
each entry means; :meth:`DescriptorMap.read` reads one request's descriptors
with it into a :class:`Reading`: the items to decide in one step, and where
each descriptor's answer comes from. Descriptors are plain ``(key, value)``
tuples here, so this module is tested and measured without protobuf.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from ...engine import Override
from ...identity import MAX_IDENTITY, Caller
from ...policy import Policy, compile_policy
from ...policy.envoy import EnvoyMapping, EnvoyNode
from ...policy.router import RouteMemo
from ...rates import NS_PER_SECOND, Rate

__all__ = ["UNLIMITED", "Descriptor", "DescriptorMap", "Entries", "Fixed", "Item", "Reading"]

#: one descriptor: its ``(key, value)`` entries, in order
Entries = Sequence[tuple[str, str]]
#: a descriptor read as the engine's item: (category, caller); no category: an override alone
Item = tuple[str | None, Caller]
#: Envoy's ``limit`` override of a descriptor: (requests per unit, the unit's seconds)
Limit = tuple[int, int]
#: one descriptor as the servicer hands it over: its entries, its hits, its ``limit`` or None
Descriptor = tuple[Entries, int, Limit | None]


class Fixed(NamedTuple):
    """A descriptor answered without the store: ``unlimited``, or a node refusing every hit."""

    #: OVER_LIMIT (a ``requests_per_unit: 0`` node, not in shadow mode)
    refuses: bool
    #: the refusing node's unit in seconds (reported as a limit of 0); ``None``: unlimited
    window_s: int | None = None


#: an ``unlimited`` descriptor: OK, with the largest ``limit_remaining``
UNLIMITED = Fixed(False)


class Reading:
    """One request's descriptors read: what to decide, and where each answer comes from.

    ``places[i]``, for descriptor ``i``: the index of its item in ``items``,
    a :class:`Fixed` answer, or ``None`` (not limited: OK, no limit).
    ``refused``: a descriptor refuses every hit, so the request is refused
    whatever the items say (they are then only looked at, never charged).
    ``rules[i]``: the name metrics give descriptor ``i``'s rule (``None``: none; the
    list is empty unless the policy reads descriptors as a ``tree``).
    ``overrides``, in step with ``items``: the ``(rate, counter)`` of a
    descriptor's own ``limit`` (``check_items(overrides=...)``), or ``None``
    when no descriptor of the request has one.
    """

    __slots__ = ("costs", "items", "overrides", "places", "refused", "rules")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.costs: list[int] = []
        self.places: list[int | Fixed | None] = []
        self.refused = False
        self.rules: list[str | None] = []
        self.overrides: list[Override] | None = None

    def add(self, item: Item, cost: int, override: Override = None) -> None:
        """One more item to decide, the place of the descriptor being read."""
        self.places.append(len(self.items))
        self.items.append(item)
        self.costs.append(cost)
        if override is not None and self.overrides is None:
            self.overrides = [None] * (len(self.items) - 1)
        if self.overrides is not None:
            self.overrides.append(override)

    def limited(
        self, domain: str, entries: Entries, cost: int, limit: Limit, item: Item | None
    ) -> None:
        """A descriptor carrying its own ``limit``: that rate, whatever the policy says of it
        (the reference's rule); 0 refuses every hit. ``item``: what the policy makes of it."""
        count, seconds = limit
        if count == 0:
            self.refused = True
            self.places.append(Fixed(True, seconds))
            return
        counter = json.dumps((domain, entries), ensure_ascii=False)  # one text, one descriptor
        caller = item[1] if item is not None else Caller("")
        category = item[0] if item is not None else None
        self.add((category, caller), cost, (Rate(count, seconds * NS_PER_SECOND), counter))


class DescriptorMap:
    """Reads the descriptors of one policy's ``envoy:`` section (``None``: no section).

    Without a section nothing is limited: every descriptor is answered OK, as
    the reference service answers a descriptor it has no limit for.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.mapping: EnvoyMapping = policy.envoy or EnvoyMapping()
        self._entries = self.mapping.entries
        self._rules = self.mapping.rules
        self._tree = self.mapping.tree
        self._trees = self.mapping.trees
        self._routes: RouteMemo[Any] | None = None
        if self.mapping.route is not None:
            self._routes = RouteMemo(compile_policy(policy).router)

    def serves(self, domain: str) -> bool:
        """Does this section answer for ``domain``? (Any domain when it names none.)"""
        wanted = self.mapping.domain
        return wanted is None or wanted == domain

    def read(self, domain: str, descriptors: Sequence[Descriptor]) -> Reading:
        """The items of a request's descriptors, decided as one."""
        reading = Reading()
        if self._trees:
            tree = self._trees.get(domain)
        else:
            tree = self._tree if self._tree is not None and self.serves(domain) else None
        if tree is not None:
            self._read_tree(domain, tree, descriptors, reading)
            return reading
        serves = self.serves(domain) and not self._trees and self._tree is None
        for entries, cost, limit in descriptors:
            item = self.item(entries) if serves else None
            if limit is not None and serves:  # another domain: not limited, its limit neither
                reading.limited(domain, entries, cost, limit, item)
            elif item is None:
                reading.places.append(None)
            else:
                reading.add(item, cost)
        return reading

    def _read_tree(
        self, domain: str, tree: EnvoyNode, descriptors: Sequence[Descriptor], reading: Reading
    ) -> None:
        """The reference's reading: each descriptor walked, then ``replaces`` applied; a
        descriptor's own ``limit`` wins over its node (no name, no replaces, no stats)."""
        walked = [self._walk(tree, entries) for entries, _, _ in descriptors]
        replaced: set[str] = set()
        for found, (_, _, limit) in zip(walked, descriptors, strict=True):
            if found is not None and found[0].replaces and limit is None:
                replaced |= found[0].replaces
        for (entries, cost, limit), found in zip(descriptors, walked, strict=True):
            node = found[0] if found is not None else None
            if limit is not None:
                reading.rules.append(None)
                item = None
                if node is not None and node.category is not None:
                    item = (node.category, self._caller(entries, {}, found[1] if found else None))
                reading.limited(domain, entries, cost, limit, item)
                continue
            reading.rules.append(node.metric if node is not None else None)
            if found is None or node is None:
                reading.places.append(None)
            elif node.unlimited:  # before replaces: the reference answers it unlimited all the same
                reading.places.append(UNLIMITED)
            elif node.name is not None and node.name in replaced:
                reading.places.append(None)
            elif node.deny is not None:
                refuses = not node.shadow
                reading.refused = reading.refused or refuses
                reading.places.append(Fixed(refuses, node.deny))
            elif node.category is None:
                reading.places.append(None)
            else:
                reading.add((node.category, self._caller(entries, {}, found[1])), cost)

    def item(self, entries: Entries, client_ip: str = "") -> Item | None:
        """The (category, caller) ``entries`` are charged to; ``None``: not limited.

        ``client_ip``: the address a ``client_ip`` entry does not give (none).
        """
        if self._tree is not None:
            found = self._walk(self._tree, entries)
            if found is None or found[0].category is None:
                return None
            return found[0].category, self._caller(entries, {}, found[1], client_ip)
        routed = self._category(dict(entries))
        if routed is None:
            return None
        return routed[0], self._caller(entries, routed[1], None, client_ip)

    def _caller(
        self,
        entries: Entries,
        params: dict[str, str],
        shared: dict[int, str] | None,
        client_ip: str = "",
    ) -> Caller:
        """The caller the entries describe; ``shared``: entries counted as their pattern."""
        meanings = self._entries
        api_key = user = node = None
        headers: dict[str, str] | None = None
        params = dict(params)
        for index, (key, value) in enumerate(entries):
            meaning = meanings.get(key)
            if meaning is None:
                continue
            if shared is not None and index in shared:
                value = shared[index]
            if meaning == "client_ip":
                client_ip = value
            elif meaning == "api_key":
                api_key = value
            elif meaning == "node":
                node = value
            elif meaning == "user":
                user = value
            elif meaning.startswith("header:"):
                if headers is None:
                    headers = {}
                headers[meaning[7:]] = _counted(value)
            else:  # path:NAME
                params[meaning[5:]] = value
        return Caller(client_ip, api_key, user, node, headers, params)

    @staticmethod
    def _walk(tree: EnvoyNode, entries: Entries) -> tuple[EnvoyNode, dict[int, str] | None] | None:
        """The reference's walk: entry by entry, key and value first, then the value patterns in
        order, else the key alone; never back. The node where the entries end, and the entries
        a ``share`` pattern matched (counted as the pattern); ``None``: no node there."""
        node = tree
        shared: dict[int, str] | None = None
        for index, (key, value) in enumerate(entries):
            step = node.children.get((key, value))
            if step is None and node.wildcards:
                for wild_key, pattern, wild in node.wildcards:
                    if wild_key == key and pattern.fullmatch(value) is not None:
                        step = wild
                        if wild.shared is not None:
                            if shared is None:
                                shared = {}
                            shared[index] = wild.shared
                        break
            if step is None:
                step = node.children.get((key, None))
                if step is None:
                    return None
            node = step
        return node, shared

    def _category(self, found: dict[str, str]) -> tuple[str, dict[str, str]] | None:
        for rule in self._rules:
            for key, value in rule.match:
                have = found.get(key)
                if have is None or (value is not None and have != value):
                    break
            else:
                return rule.category, {}
        routes, route = self._routes, self.mapping.route
        if routes is None or route is None:
            return None
        path = found.get(route[1])
        if path is None:
            return None
        _, _, matched = routes.route(found.get(route[0], "GET"), path)
        if matched is None:
            return None
        return matched[0].name, matched[1]


def _counted(value: str) -> str:
    """An entry's value as a limit counts it: an empty one, or one longer than the engine
    takes from a header (``MAX_IDENTITY``), by its SHA-256, so that Envoy's entries are
    counted as the reference counts them where an HTTP header would be a 400."""
    if value and len(value) <= MAX_IDENTITY:
        return value
    return "~" + hashlib.sha256(value.encode()).hexdigest()

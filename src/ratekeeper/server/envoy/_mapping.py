"""Envoy's descriptors as the engine's (category, caller) items: no gRPC, no I/O.

The policy's ``envoy:`` section (:mod:`ratekeeper.policy.envoy`) says what
each entry means; :class:`DescriptorMap` reads one request's descriptors
with it. Descriptors are plain ``(key, value)`` tuples here, so this module is
tested and measured without protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...identity import Caller
from ...policy import Policy, compile_policy
from ...policy.envoy import EnvoyMapping
from ...policy.router import RouteMemo

__all__ = ["DescriptorMap", "Entries", "Item"]

#: one descriptor: its ``(key, value)`` entries, in order
Entries = Sequence[tuple[str, str]]
#: a descriptor read as the engine's item: (category, caller)
Item = tuple[str, Caller]


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
        self._routes: RouteMemo[Any] | None = None
        if self.mapping.route is not None:
            self._routes = RouteMemo(compile_policy(policy).router)

    def serves(self, domain: str) -> bool:
        """Does this section answer for ``domain``? (Any domain when it names none.)"""
        wanted = self.mapping.domain
        return wanted is None or wanted == domain

    def item(self, entries: Entries, client_ip: str = "") -> Item | None:
        """The (category, caller) ``entries`` are charged to; ``None``: not limited.

        ``client_ip``: the address a ``client_ip`` entry does not give (none).
        """
        routed = self._walk(entries) if self._tree is not None else self._category(dict(entries))
        if routed is None:
            return None
        category, params = routed
        meanings = self._entries
        api_key = user = node = None
        headers: dict[str, str] | None = None
        params = dict(params)
        for key, value in entries:
            meaning = meanings.get(key)
            if meaning is None:
                continue
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
                headers[meaning[7:]] = value
            else:  # path:NAME
                params[meaning[5:]] = value
        return category, Caller(client_ip, api_key, user, node, headers, params)

    def _walk(self, entries: Entries) -> tuple[str, dict[str, str]] | None:
        """The reference's walk: entry by entry, key and value first, else key; never back."""
        node = self._tree
        assert node is not None
        for key, value in entries:
            children = node.children
            step = children.get((key, value)) or children.get((key, None))
            if step is None:
                return None
            node = step
        return None if node.category is None else (node.category, {})

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

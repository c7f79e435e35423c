"""The Lua scripts: built from the package's ``lua/`` sources, registered once per client.

Redis scripts cannot include one another, so the package builds them when it
loads them: a line ``--! include <name>`` is replaced by ``lua/<name>.lua``.
The evaluators of the four algorithms (``rates.lua``) are written once and
serve every decision; the lease and lockout code (``leases.lua``,
``lockouts.lua``) serves both the decide script's steps and the single
operations (``lease_acquire``, ``lockout_failure``), so what a step writes is
what those read. ``prelude.lua`` (exact integer arithmetic) comes first in
every script, ``clock.lua`` (the server's ms) in the small ones. Where an
include stands matters: the decide script includes the lease and lockout code
inside its step branch, so a call without a step never makes those functions
(each costs time on every call: prelude.lua).

redis-py's script objects send ``EVALSHA`` and load the script again when the
server answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources
from typing import Any

__all__ = ["Scripts", "script_text", "source"]

_INCLUDE = re.compile(r"^([ \t]*)--! include (\w+)[ \t]*$", re.MULTILINE)


def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped with the package, as written."""
    return resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")


def script_text(name: str) -> str:
    """The script ``name``: ``lua/<name>.lua`` with each ``--! include <source>`` line
    replaced by that source (itself included the same way), indented as the line is."""

    def include(found: re.Match[str]) -> str:
        indent, included = found.groups()
        text = script_text(included).rstrip("\n")
        return "\n".join(indent + line if line else line for line in text.split("\n"))

    return _INCLUDE.sub(include, source(name))


class Scripts:
    """Scripts registered on a sync client and, lazily, on an asyncio one."""

    def __init__(self, names: tuple[str, ...], client: Any, async_client: Callable[[], Any]):
        self._texts = {name: script_text(name) for name in names}
        self._sync = (
            {name: client.register_script(text) for name, text in self._texts.items()}
            if client is not None
            else {}
        )
        self._async_client = async_client
        self._async: dict[str, Any] = {}

    def sync(self, name: str) -> Any:
        return self._sync[name]

    def asynchronous(self, name: str) -> Any:
        script = self._async.get(name)
        if script is None:
            script = self._async[name] = self._async_client().register_script(self._texts[name])
        return script

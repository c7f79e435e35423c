"""The Lua scripts: read from the package's ``lua/`` folder, registered once per client.

redis-py's script objects send ``EVALSHA`` and load the script again when the
server answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

__all__ = ["Scripts", "script_text"]


def script_text(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped with the package."""
    return resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")


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

"""``serve --watch``: the policy reloaded when its file, or ``--envoy-config`` directory, changes.

The reference service (envoyproxy/ratelimit) watches its runtime directory,
and a Kubernetes ConfigMap changes files in place; SIGHUP needs someone to
send it. Watching polls a fingerprint of the policy path once a second
(each file's size and modification time: a directory's ``*.yaml`` /
``*.yml`` files, as ``--envoy-config`` reads them, symlinks followed) and
reloads through :meth:`Service.reload_policy` when it changes, so a file
that does not load is refused and logged like a SIGHUP's, the policy in
force staying. A half-written file is refused and read again at its next
change.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

__all__ = ["fingerprint", "watch_policy"]

#: seconds between two looks at the policy's files
INTERVAL = 1.0

Fingerprint = tuple[tuple[str, int, int], ...] | None


class Reloadable(Protocol):
    """What the watcher needs of a service."""

    @property
    def policy_path(self) -> Path | None: ...

    async def reload_policy(self, *, actor: str, path: str | None = None) -> list[str]: ...


def fingerprint(path: Path) -> Fingerprint:
    """``(name, size, mtime ns)`` of each file the policy path stands for; ``None``: unreadable."""
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files = [path]
        return tuple(
            (file.name, stat.st_size, stat.st_mtime_ns) for file in files for stat in (file.stat(),)
        )
    except OSError:  # being replaced, or gone: look again next time
        return None


async def watch_policy(service: Reloadable, interval: float = INTERVAL) -> None:
    """Reload ``service``'s policy whenever its files change, until cancelled."""
    path = service.policy_path
    if path is None:
        return
    last = fingerprint(path)
    while True:
        await asyncio.sleep(interval)
        path = service.policy_path or path
        now = fingerprint(path)
        if now is not None and now != last:
            last = now
            await service.reload_policy(actor="watch")
